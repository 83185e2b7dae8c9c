/**
 * Geometry of the RNNVis main view: memory chips (unit clusters as grids of cells), the boxes of
 * the word clouds, and the bands linking them. Pure functions, unit-tested.
 */

export interface ChipCell {
  unit: number
  x: number
  y: number
}

export interface ChipBox {
  id: number
  x: number
  y: number
  w: number
  h: number
  /** rows × cols of the cell grid */
  rows: number
  cols: number
  cells: ChipCell[]
}

export interface ChipLayoutOptions {
  x?: number
  y?: number
  /** side of one cell, px */
  cell?: number
  /** gap between cells, px */
  gap?: number
  /** cells per row */
  cols?: number
  /** vertical gap between chips, px */
  chipGap?: number
  /** padding inside the chip frame, px */
  pad?: number
  /** stretch the chips (by spreading their gaps) to fill this total height */
  minHeight?: number
}

/** Stack the unit clusters vertically; each chip is a grid of `cols` cells per row. */
export function chipLayout(
  clusters: { id: number; units: number[] }[],
  o: ChipLayoutOptions = {},
): { chips: ChipBox[]; width: number; height: number } {
  const cell = o.cell ?? 9
  const gap = o.gap ?? 1
  const cols = Math.max(1, o.cols ?? 10)
  const pad = o.pad ?? 4
  const x0 = o.x ?? 0
  const w = cols * (cell + gap) - gap + 2 * pad
  const heights = clusters.map((c) => Math.max(1, Math.ceil(c.units.length / cols)) * (cell + gap) - gap + 2 * pad)
  const natural = heights.reduce((a, b) => a + b, 0)
  let chipGap = o.chipGap ?? 12
  if (o.minHeight && clusters.length > 1) {
    const spread = (o.minHeight - natural) / (clusters.length - 1)
    if (spread > chipGap) chipGap = spread
  }
  let y = o.y ?? 0
  const chips: ChipBox[] = clusters.map((c, i) => {
    const h = heights[i]
    const rows = Math.max(1, Math.ceil(c.units.length / cols))
    const cells = c.units.map((unit, j) => ({
      unit,
      x: x0 + pad + (j % cols) * (cell + gap),
      y: y + pad + Math.floor(j / cols) * (cell + gap),
    }))
    const box = { id: c.id, x: x0, y, w, h, rows, cols, cells }
    y += h + chipGap
    return box
  })
  const height = chips.length ? y - chipGap - (o.y ?? 0) : 0
  return { chips, width: w, height }
}

export interface Box {
  id: number
  x: number
  y: number
  w: number
  h: number
}

/**
 * Boxes for the word clouds stacked in [y, y + height]: heights proportional to sqrt(word count)
 * with at least `minH` each, separated by `gap`.
 */
export function cloudBoxes(
  clouds: { id: number; n: number }[],
  o: { x: number; y?: number; w: number; height: number; gap?: number; minH?: number },
): Box[] {
  const gap = o.gap ?? 10
  const minH = o.minH ?? 60
  const free = Math.max(0, o.height - gap * Math.max(0, clouds.length - 1))
  const raw = clouds.map((c) => Math.sqrt(Math.max(1, c.n)))
  const total = raw.reduce((a, b) => a + b, 0) || 1
  let hs = raw.map((r) => (free * r) / total)
  // lift small boxes to minH, taking the height from the others proportionally
  const small = hs.map((h) => h < minH)
  const need = hs.reduce((a, h, i) => a + (small[i] ? minH - h : 0), 0)
  const bigTotal = hs.reduce((a, h, i) => a + (small[i] ? 0 : h), 0)
  if (need > 0 && bigTotal > need) hs = hs.map((h, i) => (small[i] ? minH : h - (need * h) / bigTotal))
  else if (need > 0) hs = hs.map((h) => Math.max(h, minH))
  let y = o.y ?? 0
  return clouds.map((c, i) => {
    const b = { id: c.id, x: o.x, y, w: o.w, h: hs[i] }
    y += hs[i] + gap
    return b
  })
}

export interface Band {
  /** unit cluster (chip) */
  i: number
  /** word cluster (cloud) */
  j: number
  value: number
  width: number
  /** band centre on the chip side and on the cloud side */
  sy: number
  ty: number
  x0: number
  x1: number
  /** closed ribbon path */
  path: string
}

/**
 * Bands from the right edge of each chip to the left edge of each cloud. Width ∝ |link|
 * (the strongest gets `maxWidth`); links weaker than `minFrac` of the strongest are dropped.
 * At each end the bands are stacked in the order of the other end's position, so they do not
 * cross there, and centred on the box; when they would overflow a box they are all scaled down.
 */
export function bandLayout(
  links: (number | null)[][],
  chips: { id: number; x: number; y: number; w: number; h: number }[],
  clouds: Box[],
  o: { maxWidth?: number; minFrac?: number } = {},
): Band[] {
  const maxWidth = o.maxWidth ?? 18
  const minFrac = o.minFrac ?? 0.15
  const chipIdx = new Map(chips.map((c, k) => [c.id, k]))
  const cloudIdx = new Map(clouds.map((c, k) => [c.id, k]))
  let maxAbs = 0
  for (const row of links) for (const v of row) if (v !== null && Number.isFinite(v)) maxAbs = Math.max(maxAbs, Math.abs(v))
  if (maxAbs === 0) return []
  const raw: { i: number; j: number; value: number; width: number }[] = []
  links.forEach((row, i) =>
    row.forEach((v, j) => {
      if (v === null || !Number.isFinite(v)) return
      if (!chipIdx.has(i) || !cloudIdx.has(j)) return
      if (Math.abs(v) < minFrac * maxAbs) return
      raw.push({ i, j, value: v, width: Math.max(1, (maxWidth * Math.abs(v)) / maxAbs) })
    }),
  )
  // shrink factor so that the bands fit every box they touch
  let shrink = 1
  const sumAt = (key: 'i' | 'j', id: number) => raw.filter((b) => b[key] === id).reduce((a, b) => a + b.width, 0)
  for (const [key, boxes] of [['i', chips], ['j', clouds]] as const) {
    for (const c of boxes) {
      const s = sumAt(key, c.id)
      if (s > c.h) shrink = Math.min(shrink, c.h / s)
    }
  }
  raw.forEach((b) => (b.width *= shrink))

  const key = (b: { i: number; j: number }) => `${b.i}:${b.j}`
  /** Centre y of each band where it meets its box on one side: bands stacked, centred on the box,
   * ordered by the y of the box at their other end. */
  const stack = (own: 'i' | 'j', boxes: Box[], otherY: (b: (typeof raw)[number]) => number) => {
    const at = new Map<string, number>()
    for (const c of boxes) {
      const mine = raw.filter((b) => b[own] === c.id).sort((a, b) => otherY(a) - otherY(b))
      let y = c.y + c.h / 2 - mine.reduce((a, b) => a + b.width, 0) / 2
      for (const b of mine) {
        at.set(key(b), y + b.width / 2)
        y += b.width
      }
    }
    return at
  }
  const sy = stack('i', chips, (b) => clouds[cloudIdx.get(b.j)!].y)
  const ty = stack('j', clouds, (b) => chips[chipIdx.get(b.i)!].y)
  return raw.map((b) => {
    const chip = chips[chipIdx.get(b.i)!]
    const cloud = clouds[cloudIdx.get(b.j)!]
    const x0 = chip.x + chip.w
    const x1 = cloud.x
    const s = sy.get(key(b))!
    const t = ty.get(key(b))!
    return { ...b, sy: s, ty: t, x0, x1, path: ribbon(x0, s, x1, t, b.width) }
  })
}

/** A closed ribbon of constant vertical width `w` from (x0, sy) to (x1, ty), cubic-eased. */
export function ribbon(x0: number, sy: number, x1: number, ty: number, w: number): string {
  const xm = (x0 + x1) / 2
  const h = w / 2
  const f = (n: number) => +n.toFixed(2)
  return (
    `M${f(x0)},${f(sy - h)}C${f(xm)},${f(sy - h)} ${f(xm)},${f(ty - h)} ${f(x1)},${f(ty - h)}` +
    `L${f(x1)},${f(ty + h)}C${f(xm)},${f(ty + h)} ${f(xm)},${f(sy + h)} ${f(x0)},${f(sy + h)}Z`
  )
}

/** Partners of a hovered chip or cloud: the ids at the other end of its bands. */
export function partners(bands: Band[], hover: { type: 'chip' | 'cloud'; id: number } | null): { chips: Set<number>; clouds: Set<number> } {
  const chips = new Set<number>()
  const clouds = new Set<number>()
  if (!hover) return { chips, clouds }
  if (hover.type === 'chip') chips.add(hover.id)
  else clouds.add(hover.id)
  for (const b of bands) {
    if (hover.type === 'chip' && b.i === hover.id) clouds.add(b.j)
    if (hover.type === 'cloud' && b.j === hover.id) chips.add(b.i)
  }
  return { chips, clouds }
}
