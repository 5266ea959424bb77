/** @nstp/core/bun: the Bun.listen / Bun.connect transport (Bun only; `defaultTransport()` in ./node picks it under Bun). */
export { bunTransport } from "./transport/bun.ts";
