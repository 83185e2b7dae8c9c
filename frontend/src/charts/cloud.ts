/** Word-cloud layout with d3-cloud (deterministic: seeded random, no rotation). */
import { showToken } from '../tokens'
import cloud from 'd3-cloud'
import { scaleSqrt } from 'd3'

export interface CloudInput {
  word: string
  weight: number
  pos: string | null
}

export interface PlacedWord extends CloudInput {
  /** centre of the word relative to the box centre, and its font size */
  x: number
  y: number
  size: number
}

/** mulberry32: a tiny seeded PRNG so the same data gives the same cloud. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Font sizes by sqrt(|weight|), the largest word at `maxSize`, the smallest at `minSize`. */
export function fontSizes(words: CloudInput[], minSize: number, maxSize: number): number[] {
  if (!words.length) return []
  const ws = words.map((w) => Math.abs(w.weight))
  const lo = Math.min(...ws)
  const hi = Math.max(...ws)
  if (!(hi > lo)) return ws.map(() => (minSize + maxSize) / 2)
  const s = scaleSqrt().domain([lo, hi]).range([minSize, maxSize])
  return ws.map((w) => s(w))
}

let canvasOk: boolean | null = null
function hasCanvas(): boolean {
  if (canvasOk === null) {
    try {
      canvasOk = typeof document !== 'undefined' && !!document.createElement('canvas').getContext('2d')
    } catch {
      canvasOk = false
    }
  }
  return canvasOk
}

/** Without a canvas to measure text (tests, old browsers): rows of words, biggest first. */
export function gridCloud(words: CloudInput[], w: number, h: number, sizes: number[]): PlacedWord[] {
  const out: PlacedWord[] = []
  let x = 0
  let y = 0
  let rowH = 0
  words.forEach((d, i) => {
    const size = sizes[i]
    const ww = showToken(d.word).length * size * 0.6 + 6
    if (x + ww > w && x > 0) {
      x = 0
      y += rowH + 2
      rowH = 0
    }
    if (y + size > h) return
    out.push({ ...d, size, x: x + ww / 2 - w / 2, y: y + size / 2 - h / 2 })
    x += ww
    rowH = Math.max(rowH, size)
  })
  return out
}

export function layoutCloud(words: CloudInput[], w: number, h: number, seed = 1): Promise<PlacedWord[]> {
  const maxSize = Math.max(10, Math.min(26, h / 3.2))
  const sizes = fontSizes(words, 9, maxSize)
  if (!hasCanvas()) return Promise.resolve(gridCloud(words, w, h, sizes))
  // d3-cloud writes its own fields (text, size, weight = font weight, …) onto each datum: keep ours apart
  const input = words.map((d, i) => ({ datum: d, text: showToken(d.word), size: sizes[i], x: 0, y: 0 }))
  return new Promise((resolve) => {
    cloud<(typeof input)[number]>()
      .size([Math.max(10, w), Math.max(10, h)])
      .words(input)
      .padding(1.5)
      .rotate(0)
      .font('system-ui, sans-serif')
      .fontSize((d) => d.size)
      .random(seeded(seed))
      .on('end', (placed) =>
        resolve(
          placed.map((p) => ({ word: p.datum.word, weight: p.datum.weight, pos: p.datum.pos, x: p.x, y: p.y, size: p.size })),
        ),
      )
      .start()
  })
}
