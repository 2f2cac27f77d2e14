/**
 * A QR code drawn as SVG elements from `uqr`'s matrix: no markup string is
 * ever parsed, so the page's strict Content Security Policy holds. Dark
 * modules on white with the standard quiet zone, in either theme, because
 * phone cameras read that best.
 *
 * @module
 */
import { useMemo } from "preact/hooks";
import { encode } from "uqr";

/** Modules of white around the code, as the QR standard asks. */
const QUIET = 4;

/** Runs of dark modules, row by row: one `<rect>` per run keeps the element count low. */
function runs(data: boolean[][]): { x: number; y: number; w: number }[] {
  const out: { x: number; y: number; w: number }[] = [];
  data.forEach((row, y) => {
    let x = 0;
    while (x < row.length) {
      if (!row[x]) {
        x++;
        continue;
      }
      const start = x;
      while (x < row.length && row[x]) x++;
      out.push({ x: start, y, w: x - start });
    }
  });
  return out;
}

/** The QR code of `text`, `size` pixels wide, labelled for screen readers. */
export function QrCode(
  { text, label, size = 200 }: { text: string; label: string; size?: number },
) {
  const code = useMemo(() => {
    // M: a smudged or partly covered code still reads.
    const qr = encode(text, { ecc: "M", border: QUIET });
    return { size: qr.size, runs: runs(qr.data) };
  }, [text]);
  return (
    <svg
      class="qr"
      role="img"
      aria-label={label}
      width={size}
      height={size}
      viewBox={`0 0 ${code.size} ${code.size}`}
      shape-rendering="crispEdges"
      data-modules={code.size - 2 * QUIET}
    >
      <rect width={code.size} height={code.size} fill="#ffffff" />
      {code.runs.map((r) => (
        <rect key={`${r.x},${r.y}`} x={r.x} y={r.y} width={r.w} height={1} fill="#000000" />
      ))}
    </svg>
  );
}
