// Typed reads of config keys; every error names the full key path, as operators need to find it.
import { CniError, ErrCode } from './errors';

type Obj = Record<string, unknown>;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  return typeof v;
}

export class ConfigReader {
  constructor(
    readonly obj: Obj,
    readonly prefix = '',
  ) {}

  key(k: string): string {
    return this.prefix ? `${this.prefix}.${k}` : k;
  }

  has(k: string): boolean {
    return this.obj[k] !== undefined && this.obj[k] !== null;
  }

  fail(k: string, why: string): CniError {
    return new CniError(ErrCode.InvalidConfig, `invalid config: ${this.key(k)}: ${why}`);
  }

  /** code 2: a known key with a value we do not support; the message carries key and value as the spec asks */
  unsupported(k: string, why: string): CniError {
    return new CniError(ErrCode.UnsupportedField, `unsupported value for ${this.key(k)}: ${JSON.stringify(this.obj[k])}: ${why}`);
  }

  private typed<T>(k: string, want: string, def: T | undefined, ok: (v: unknown) => boolean): T | undefined {
    const v = this.obj[k];
    if (v === undefined || v === null) return def;
    if (!ok(v)) throw this.fail(k, `expected ${want}, got ${typeName(v)} ${JSON.stringify(v)}`);
    return v as T;
  }

  string(k: string): string | undefined;
  string(k: string, def: string): string;
  string(k: string, def?: string): string | undefined {
    return this.typed<string>(k, 'a string', def, (v) => typeof v === 'string');
  }

  requiredString(k: string): string {
    const v = this.string(k);
    if (v === undefined || v === '') throw this.fail(k, 'is required');
    return v;
  }

  /**
   * A file or directory path: absolute, because a plugin's working directory is whatever the runtime's is.
   * Unset or '' gives undefined.
   */
  absolutePath(k: string): string | undefined {
    const v = this.string(k);
    if (v === undefined || v === '') return undefined;
    if (v.includes('\0')) throw this.fail(k, 'contains a NUL byte');
    if (!v.startsWith('/')) throw this.fail(k, `${JSON.stringify(v)} is not an absolute path`);
    return v;
  }

  bool(k: string, def = false): boolean {
    return this.typed<boolean>(k, 'a boolean', def, (v) => typeof v === 'boolean') as boolean;
  }

  int(k: string, def: number, min?: number, max?: number): number;
  int(k: string, def?: number, min?: number, max?: number): number | undefined;
  int(k: string, def?: number, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = this.typed<number>(k, 'an integer', def, (x) => typeof x === 'number' && Number.isInteger(x));
    if (this.has(k) && (v! < min || v! > max)) throw this.fail(k, `${v} is out of range ${min}..${max}`);
    return v;
  }

  object(k: string): ConfigReader | undefined {
    const v = this.typed<Obj>(k, 'an object', undefined, (x) => typeof x === 'object' && !Array.isArray(x));
    return v === undefined ? undefined : new ConfigReader(v, this.key(k));
  }

  list(k: string): unknown[] | undefined {
    return this.typed<unknown[]>(k, 'a list', undefined, Array.isArray);
  }

  /** A list of objects, each as a reader keyed `k[i]`. */
  objectList(k: string): ConfigReader[] | undefined {
    const l = this.list(k);
    return l?.map((v, i) => {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        throw new CniError(ErrCode.InvalidConfig, `invalid config: ${this.key(k)}[${i}]: expected an object, got ${typeName(v)}`);
      }
      return new ConfigReader(v as Obj, `${this.key(k)}[${i}]`);
    });
  }

  stringList(k: string): string[] | undefined {
    const l = this.list(k);
    l?.forEach((v, i) => {
      if (typeof v !== 'string') {
        throw new CniError(ErrCode.InvalidConfig, `invalid config: ${this.key(k)}[${i}]: expected a string, got ${typeName(v)}`);
      }
    });
    return l as string[] | undefined;
  }
}
