/** SVG path of a small line chart: pure geometry, so the page can draw it without JavaScript. */
export interface SparkPath {
  d: string;
  last: number | null;
  max: number;
}

/**
 * `values` at times `t` into a `width`×`height` box over [fromT, toT]; nulls break the line.
 * `ceiling` fixes the top of the scale (100 for CPU %), otherwise the series' own maximum.
 */
export function sparkPath(t: number[], values: (number | null)[], fromT: number, toT: number, width: number, height: number, ceiling?: number): SparkPath {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  const max = ceiling ?? Math.max(1, ...present);
  const span = Math.max(1, toT - fromT);
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    // A bucket may start just before the window (its timestamp is the bucket's start): pin it to the edge.
    const x = Math.min(width, Math.max(0, ((t[i]! - fromT) / span) * width));
    const y = height - (Math.min(v, max) / max) * (height - 1) - 0.5;
    d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
    pen = true;
  });
  return { d, last: present.length ? present[present.length - 1]! : null, max };
}
