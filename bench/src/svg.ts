/** An SVG chart (no scripts, viewable offline) of echo throughput by message size, log scale. */
import { type Protocol, REPORTED, type Report } from "./report-types.ts";

const W = 760, H = 420, M = { left: 70, right: 200, top: 40, bottom: 50 };
// Chart colours and labels; a version without its own gets the fallback colour and its registry name.
const COLORS: Partial<Record<Protocol, string>> = { v2: "#1b7f3b", v3: "#7a1fa2", legacy: "#8a5a00", tcp: "#555555", tls: "#1f4fbf" };
const NAMES: Partial<Record<Protocol, string>> = { legacy: "legacy pipelined", tcp: "raw TCP", tls: "TLS 1.3" };
const FALLBACK_COLOR = "#b22222";
const DASH: Record<string, string> = { bun: "", node: "6 4" };
const SIZE_LABEL: Record<number, string> = { 64: "64 B", 1024: "1 KiB", 16384: "16 KiB", 61440: "60 KiB" };

export function renderSvg(report: Report): string {
  const sizes = (report.env.options.sizes as number[]) ?? [];
  const runtimes = Object.keys(report.env.runtimes);
  const series: { label: string; color: string; dash: string; points: [number, number][] }[] = [];
  for (const r of runtimes) {
    for (const p of REPORTED) {
      const points: [number, number][] = [];
      sizes.forEach((s, i) => {
        const v = report.results.find((x) => x.scenario === "echo-pipelined" && x.runtime === r && x.protocol === p && x.size === s && x.unit === "MB/s")?.value;
        if (v !== undefined && v > 0) points.push([i, v]);
      });
      if (points.length) series.push({ label: `${r} ${NAMES[p] ?? p}`, color: COLORS[p] ?? FALLBACK_COLOR, dash: DASH[r] ?? "2 2", points });
    }
  }
  const all = series.flatMap((s) => s.points.map((p) => p[1]));
  const lo = Math.floor(Math.log10(Math.min(...all)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...all))));
  const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
  const x = (i: number) => M.left + (sizes.length > 1 ? (i / (sizes.length - 1)) * pw : pw / 2);
  const y = (v: number) => M.top + ph - ((Math.log10(v) - lo) / (hi - lo || 1)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${M.left}" y="22" font-size="14" font-weight="bold">Echo throughput by message size (MB/s of payload, log scale)</text>`);
  for (let e = lo; e <= hi; e++) {
    const yy = y(10 ** e);
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`);
    parts.push(`<text x="${M.left - 8}" y="${yy + 4}" text-anchor="end">${(10 ** e).toLocaleString("en-US")}</text>`);
  }
  sizes.forEach((s, i) => parts.push(`<text x="${x(i)}" y="${M.top + ph + 20}" text-anchor="middle">${SIZE_LABEL[s] ?? `${s} B`}</text>`));
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">message size</text>`);
  series.forEach((s, k) => {
    const d = s.points.map(([i, v], j) => `${j ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}"/>`);
    for (const [i, v] of s.points) parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"/>`);
    const ly = M.top + 10 + k * 20;
    parts.push(`<line x1="${W - M.right + 15}" x2="${W - M.right + 45}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}"/>`);
    parts.push(`<text x="${W - M.right + 52}" y="${ly + 4}">${s.label}</text>`);
  });
  parts.push(`<text x="${W - M.right + 15}" y="${H - 20}" fill="#666">${report.env.cpu.slice(0, 28)}, ${report.env.cores} cores</text>`);
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
