/**
 * A spy on the machines a factory makes (a registry entry's `client` or `server`): each records how
 * often its dispose() ran, and the secrets `secrets` found in it when the first call came, before the
 * real dispose() zeroed them (machine.ts dispose). For the drivers' tests of key hygiene.
 */
export interface DisposeRecord<M> {
  machine: M;
  disposals: number;
  secrets: Uint8Array[];
}

/** Wraps `holder[method]`, a factory of machines; restore() puts the factory back. */
export function spyOnDispose<M extends { dispose(): void }>(
  holder: object,
  method: string,
  secrets: (machine: M) => Uint8Array[],
): { made: DisposeRecord<M>[]; restore(): void } {
  const factory = Reflect.get(holder, method) as (...args: unknown[]) => M;
  const made: DisposeRecord<M>[] = [];
  Reflect.set(holder, method, (...args: unknown[]) => {
    const machine = factory(...args);
    const record: DisposeRecord<M> = { machine, disposals: 0, secrets: [] };
    const dispose = machine.dispose.bind(machine);
    machine.dispose = () => {
      if (record.disposals++ === 0) record.secrets = secrets(machine);
      dispose();
    };
    made.push(record);
    return machine;
  });
  return { made, restore: () => void Reflect.set(holder, method, factory) };
}
