// @vitest-environment node
import { describe, it, expect } from 'vitest'
import { parseTokens, showToken, typedToken } from './tokens'

describe('blank characters of character models', () => {
  it('are drawn as visible symbols', () => {
    expect([' ', '\n', '\t', 'a', 'the'].map(showToken)).toEqual(['␣', '↵', '⇥', 'a', 'the'])
  })
  it('are typed as their symbol or an escape, and round-trip', () => {
    expect(parseTokens('e ␣ \\n ⇥, \\t t \\s')).toEqual(['e', ' ', '\n', '\t', 't'])
    expect(parseTokens('\\, a')).toEqual([',', 'a'])
    for (const c of [' ', '\n', '\t']) expect(typedToken(showToken(c))).toBe(c)
  })
  it('leave words alone', () => {
    expect(parseTokens(' the, of  the\tcat ')).toEqual(['the', 'of', 'cat'])
  })
})
