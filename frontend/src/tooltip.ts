/** One shared tooltip <div class="tooltip"> following the mouse. */
let el: HTMLDivElement | null = null

function node(): HTMLDivElement {
  if (!el) {
    el = document.createElement('div')
    el.className = 'tooltip'
    el.dataset.test = 'tooltip'
    el.style.display = 'none'
    document.body.appendChild(el)
  }
  return el
}

/** Show `html` (trusted markup; escape user text with `esc`) near the pointer of `ev`. */
export function showTip(ev: MouseEvent, html: string): void {
  const t = node()
  t.innerHTML = html
  t.style.display = 'block'
  const pad = 12
  const w = t.offsetWidth
  const h = t.offsetHeight
  const x = ev.clientX + pad + w > window.innerWidth ? ev.clientX - pad - w : ev.clientX + pad
  const y = ev.clientY + pad + h > window.innerHeight ? ev.clientY - pad - h : ev.clientY + pad
  t.style.left = `${Math.max(0, x)}px`
  t.style.top = `${Math.max(0, y)}px`
}

export function hideTip(): void {
  if (el) el.style.display = 'none'
}

export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** Format a number compactly for labels and tooltips. */
export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–'
  if (typeof v !== 'number') return String(v)
  if (v !== 0 && (Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3)) return v.toExponential(2)
  return String(+v.toFixed(digits))
}
