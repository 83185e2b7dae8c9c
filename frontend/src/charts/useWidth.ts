import { onBeforeUnmount, onMounted, ref, type Ref } from 'vue'

/** The content width of an element, kept up to date with a ResizeObserver. */
export function useWidth(el: Ref<HTMLElement | null>, fallback = 800): Ref<number> {
  const width = ref(fallback)
  let ro: ResizeObserver | null = null
  onMounted(() => {
    if (!el.value) return
    width.value = el.value.clientWidth || fallback
    if (typeof ResizeObserver === 'undefined') return
    ro = new ResizeObserver((entries) => {
      const w = Math.floor(entries[0].contentRect.width)
      if (w > 0 && Math.abs(w - width.value) > 4) width.value = w
    })
    ro.observe(el.value)
  })
  onBeforeUnmount(() => ro?.disconnect())
  return width
}
