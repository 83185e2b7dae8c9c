/**
 * Export a chart: its <svg> (or <canvas>) as SVG / PNG, its data as CSV / JSON.
 * Serialisation inlines the computed styles so the file looks as on screen.
 */

/** Style properties copied inline onto every exported element. */
const STYLE_PROPS = [
  'fill', 'fill-opacity', 'stroke', 'stroke-width', 'stroke-opacity', 'stroke-dasharray', 'opacity',
  'font-family', 'font-size', 'font-weight', 'font-style', 'text-anchor', 'dominant-baseline',
  'alignment-baseline', 'visibility', 'display', 'shape-rendering',
]

/** Clone `svg` with computed styles inlined, set xmlns and size; return its XML text. */
export function serializeSvg(svg: SVGSVGElement): string {
  const clone = svg.cloneNode(true) as SVGSVGElement
  const src = [svg, ...Array.from(svg.querySelectorAll('*'))]
  const dst = [clone, ...Array.from(clone.querySelectorAll('*'))]
  const canStyle = typeof window !== 'undefined' && typeof window.getComputedStyle === 'function'
  src.forEach((el, i) => {
    if (!canStyle) return
    const cs = window.getComputedStyle(el)
    const parts: string[] = []
    for (const p of STYLE_PROPS) {
      const v = cs.getPropertyValue(p)
      if (v) parts.push(`${p}:${v}`)
    }
    const own = (dst[i] as Element).getAttribute('style')
    if (parts.length) (dst[i] as Element).setAttribute('style', parts.join(';') + (own ? `;${own}` : ''))
  })
  clone.setAttribute('xmlns', 'http://www.w3.org/2000/svg')
  clone.setAttribute('xmlns:xlink', 'http://www.w3.org/1999/xlink')
  const { width, height } = svgSize(svg)
  if (!clone.getAttribute('width')) clone.setAttribute('width', String(width))
  if (!clone.getAttribute('height')) clone.setAttribute('height', String(height))
  // white background so PNGs are not transparent
  const bg = document.createElementNS('http://www.w3.org/2000/svg', 'rect')
  bg.setAttribute('width', '100%')
  bg.setAttribute('height', '100%')
  bg.setAttribute('fill', '#ffffff')
  clone.insertBefore(bg, clone.firstChild)
  return `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(clone)}`
}

export function svgSize(svg: SVGSVGElement): { width: number; height: number } {
  const w = Number(svg.getAttribute('width')) || svg.viewBox?.baseVal?.width || svg.getBoundingClientRect().width || 600
  const h = Number(svg.getAttribute('height')) || svg.viewBox?.baseVal?.height || svg.getBoundingClientRect().height || 400
  return { width: w, height: h }
}

export function download(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = filename
  a.style.display = 'none'
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 1000)
}

export function exportSvg(svg: SVGSVGElement, name: string): void {
  download(new Blob([serializeSvg(svg)], { type: 'image/svg+xml;charset=utf-8' }), `${name}.svg`)
}

/** Draw the SVG (or copy the canvas) at `scale`× onto a canvas and download it as PNG. */
export async function exportPng(el: SVGSVGElement | HTMLCanvasElement, name: string, scale = 2): Promise<void> {
  let canvas: HTMLCanvasElement
  if (el instanceof HTMLCanvasElement) {
    canvas = document.createElement('canvas')
    canvas.width = el.width
    canvas.height = el.height
    const ctx = canvas.getContext('2d')!
    ctx.fillStyle = '#fff'
    ctx.fillRect(0, 0, canvas.width, canvas.height)
    ctx.drawImage(el, 0, 0)
  } else {
    const { width, height } = svgSize(el)
    const url = URL.createObjectURL(new Blob([serializeSvg(el)], { type: 'image/svg+xml;charset=utf-8' }))
    try {
      const img = new Image()
      await new Promise<void>((resolve, reject) => {
        img.onload = () => resolve()
        img.onerror = () => reject(new Error('could not render the SVG'))
        img.src = url
      })
      canvas = document.createElement('canvas')
      canvas.width = Math.ceil(width * scale)
      canvas.height = Math.ceil(height * scale)
      const ctx = canvas.getContext('2d')!
      ctx.fillStyle = '#fff'
      ctx.fillRect(0, 0, canvas.width, canvas.height)
      ctx.scale(scale, scale)
      ctx.drawImage(img, 0, 0, width, height)
    } finally {
      URL.revokeObjectURL(url)
    }
  }
  const blob = await new Promise<Blob | null>((r) => canvas.toBlob(r, 'image/png'))
  if (blob) download(blob, `${name}.png`)
}

/** One CSV field: quoted when it holds a comma, quote, newline or leading/trailing space. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : ''
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v)
  return /[",\n\r]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export type CsvData = object[] | unknown[][]

/**
 * Rows to CSV text. Objects: header = union of keys in first-seen order. Arrays of arrays:
 * written as they are, with `header` (if given) as the first line.
 */
export function toCsv(rows: CsvData, header?: string[]): string {
  const lines: string[] = []
  if (rows.length && Array.isArray(rows[0])) {
    if (header) lines.push(header.map(csvField).join(','))
    for (const r of rows as unknown[][]) lines.push(r.map(csvField).join(','))
  } else {
    const cols: string[] = header ? [...header] : []
    if (!header) {
      const seen = new Set<string>()
      for (const r of rows as Record<string, unknown>[])
        for (const k of Object.keys(r)) if (!seen.has(k)) (seen.add(k), cols.push(k))
    }
    lines.push(cols.map(csvField).join(','))
    for (const r of rows as Record<string, unknown>[]) lines.push(cols.map((c) => csvField(r[c])).join(','))
  }
  return lines.join('\n') + '\n'
}

/**
 * Best-effort flattening of a chart's data for CSV: an array of objects or arrays is used as it
 * is; an object is searched for its first array-valued field.
 */
export function tabular(data: unknown): CsvData {
  if (Array.isArray(data)) {
    if (data.length === 0) return []
    if (typeof data[0] === 'object' && data[0] !== null) return data as CsvData
    return data.map((v, i) => ({ index: i, value: v }))
  }
  if (data && typeof data === 'object') {
    for (const v of Object.values(data)) if (Array.isArray(v) && v.length) return tabular(v)
    return [data as Record<string, unknown>]
  }
  return [{ value: data }]
}

export function exportCsv(data: unknown, name: string): void {
  download(new Blob([toCsv(tabular(data))], { type: 'text/csv;charset=utf-8' }), `${name}.csv`)
}

export function exportJson(data: unknown, name: string): void {
  download(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }), `${name}.json`)
}

/** A file-name-safe slug. */
export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'chart'
}
