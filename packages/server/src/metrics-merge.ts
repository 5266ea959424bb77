/**
 * The supervisor's one /metrics for N worker processes: each worker's Prometheus text, its samples
 * labelled worker="i" and grouped by family (the exposition format wants a family's samples
 * together, under one HELP and TYPE).
 */

/** Merges the texts of workers 0..n-1 (undefined: a worker that did not answer, left out). */
export function mergeWorkerMetrics(texts: readonly (string | undefined)[]): string {
  const families = new Map<string, { header: string[]; samples: string[] }>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { header: [], samples: [] }));
    return f;
  };
  texts.forEach((text, worker) => {
    if (text === undefined) return;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (meta) {
        const f = family(meta[2]!);
        if (f.header.length < 2 && !f.header.some((h) => h.startsWith(`# ${meta[1]} `))) f.header.push(line);
        continue;
      }
      if (line.startsWith("#")) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (.*)$/.exec(line);
      if (!m) continue;
      const labels = m[2] ? `{worker="${worker}",${m[2].slice(1)}` : `{worker="${worker}"}`;
      family(m[1]!).samples.push(`${m[1]}${labels} ${m[3]}`);
    }
  });
  const out: string[] = [];
  for (const f of families.values()) out.push(...f.header, ...f.samples);
  return out.join("\n") + "\n";
}
