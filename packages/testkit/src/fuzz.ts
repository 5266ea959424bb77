/**
 * The shape of a fuzzing property (fast-check), shared by the protocol properties
 * (packages/core/src/testing/) and the server's admission properties, run by their fuzz tests and by
 * scripts/fuzz.ts with one seed.
 */
import fc from "fast-check";

export { fc };

export interface FuzzProperty {
  name: string;
  property: fc.IProperty<never>;
}

// Each property is typed loosely for the table; fast-check checks its own arguments.
export const p = <T extends unknown[]>(name: string, arbs: { [K in keyof T]: fc.Arbitrary<T[K]> }, f: (...args: T) => void): FuzzProperty => ({
  name,
  property: fc.property(...(arbs as unknown as [fc.Arbitrary<unknown>]), f as (...a: unknown[]) => void) as unknown as fc.IProperty<never>,
});
