// The simulator's clock and agenda: events ordered by (time, sequence number), so two events at
// the same simulated time run in the order they were scheduled and a seed replays exactly.

interface Scheduled {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

export class Agenda {
  private readonly heap: Scheduled[] = [];
  private seq = 0;
  nowMs = 0;
  executed = 0;

  at(atMs: number, run: () => void): void {
    this.push({ at: Math.max(atMs, this.nowMs), seq: this.seq++, run });
  }

  after(delayMs: number, run: () => void): void {
    this.at(this.nowMs + delayMs, run);
  }

  /** Runs events up to and including `untilMs`; the clock ends at untilMs. */
  runUntil(untilMs: number): void {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.at > untilMs) break;
      this.pop();
      this.nowMs = top.at;
      this.executed++;
      top.run();
    }
    this.nowMs = untilMs;
  }

  get pending(): number {
    return this.heap.length;
  }

  private less(a: Scheduled, b: Scheduled): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(s: Scheduled): void {
    const h = this.heap;
    h.push(s);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i] as Scheduled, h[p] as Scheduled)) break;
      [h[i], h[p]] = [h[p] as Scheduled, h[i] as Scheduled];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop() as Scheduled;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l] as Scheduled, h[m] as Scheduled)) m = l;
      if (r < h.length && this.less(h[r] as Scheduled, h[m] as Scheduled)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m] as Scheduled, h[i] as Scheduled];
      i = m;
    }
  }
}
