/**
 * How a token is drawn, in one place for every view: the blank characters of character models
 * (space, newline, tab) are among their heaviest "words" and would draw as nothing, so they are
 * shown as visible symbols, and the same symbols (or \n, \t, \s) typed in an input mean them.
 */
const SHOWN: Record<string, string> = { ' ': '␣', '\n': '↵', '\t': '⇥', '\r': '␍' }
const TYPED: Record<string, string> = {
  '␣': ' ', '\\s': ' ', '↵': '\n', '\\n': '\n', '⇥': '\t', '\\t': '\t', '␍': '\r', '\\r': '\r', '\\,': ',',
}

/** The visible form of a token: "␣" for a space, "↵" for a newline, "⇥" for a tab; others as they are. */
export function showToken(tok: string): string {
  return SHOWN[tok] ?? tok
}

/** The token a typed piece stands for ("␣" or "\s" -> " ", "\n" -> newline…); others as they are. */
export function typedToken(piece: string): string {
  return TYPED[piece] ?? piece
}

/** Words of an input line, split at spaces and commas, symbols of blanks turned into the blanks. */
export function parseTokens(raw: string): string[] {
  const out: string[] = []
  for (const piece of raw.split(/(?<!\\)[\s,]+/)) {
    if (!piece) continue
    const t = typedToken(piece)
    if (!out.includes(t)) out.push(t)
  }
  return out
}
