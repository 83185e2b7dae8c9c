/**
 * Pure logic of the projection view: fit the 2-D map into the plot box (equal aspect, so
 * distances are not distorted), the unit index of a point, and colour groups.
 */

export interface MapPoint {
  x: number
  y: number
  label: string
  group: number | null
}

export interface Fit {
  /** data -> pixels */
  sx: (x: number) => number
  sy: (y: number) => number
  /** pixels per data unit (same on both axes) */
  k: number
}

/**
 * Scales that fit all points into width × height minus `pad` on each side with one scale for
 * both axes (centred); y grows upwards as in a scatter plot. Non-finite points are ignored.
 */
export function fitPoints(points: { x: number; y: number }[], width: number, height: number, pad = 20): Fit {
  const ok = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
  const w = Math.max(1, width - 2 * pad)
  const h = Math.max(1, height - 2 * pad)
  if (!ok.length) return { sx: () => width / 2, sy: () => height / 2, k: 1 }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity
  for (const p of ok) {
    x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x)
    y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y)
  }
  const dx = x1 - x0
  const dy = y1 - y0
  const k = dx === 0 && dy === 0 ? 1 : Math.min(dx > 0 ? w / dx : Infinity, dy > 0 ? h / dy : Infinity)
  const cx = (x0 + x1) / 2
  const cy = (y0 + y1) / 2
  return { sx: (x) => width / 2 + (x - cx) * k, sy: (y) => height / 2 - (y - cy) * k, k }
}

/** Unit index of point i of a units map: its label when it is an integer ("12" or "unit 12"), else i. */
export function unitOfPoint(p: { label: string }, i: number): number {
  const m = /(\d+)\s*$/.exec(String(p.label ?? ''))
  return m ? Number(m[1]) : i
}

/**
 * Cluster of each point of a units map: from the co-clustering's unit -> cluster table when
 * given (matched by unit index), else the point's own `group`.
 */
export function pointGroups(points: MapPoint[], unitCluster?: Map<number, number> | null): (number | null)[] {
  return points.map((p, i) => {
    if (unitCluster && unitCluster.size) {
      const c = unitCluster.get(unitOfPoint(p, i))
      if (c !== undefined) return c
    }
    return p.group ?? null
  })
}

/** SVG path joining the points in order (a sentence trajectory). */
export function trajectoryPath(points: { x: number; y: number }[], fit: Fit): string {
  let d = ''
  let pen = false
  for (const p of points) {
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) {
      pen = false
      continue
    }
    d += `${pen ? 'L' : 'M'}${fit.sx(p.x).toFixed(2)},${fit.sy(p.y).toFixed(2)}`
    pen = true
  }
  return d
}
