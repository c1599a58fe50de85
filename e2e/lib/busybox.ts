// A container image made offline from Debian's busybox-static: a rootfs directory (busybox + one link per
// applet), its tar (what `podman import` takes), and an OCI image layout archive (what `ctr images import`
// takes). No registry, no network.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { run } from '../../pkg/exec';

export const BUSYBOX = '/bin/busybox';

/** Why no image can be made here, or undefined when busybox-static is present. */
export function busyboxMissing(): string | undefined {
  if (!fs.existsSync(BUSYBOX)) return `${BUSYBOX} not found (apt-get install busybox-static)`;
  return undefined;
}

/**
 * A rootfs under `dir`: /bin/busybox, a link per applet in /bin, empty /tmp /etc /proc /sys /dev /www and a
 * minimal /etc/passwd. Returns the rootfs path.
 */
export async function busyboxRootfs(dir: string): Promise<string> {
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'tmp', 'etc', 'proc', 'sys', 'dev', 'root', 'www']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.copyFileSync(BUSYBOX, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  const applets = (await run(BUSYBOX, ['--list'])).stdout.split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\n');
  return root;
}

/** The rootfs as an uncompressed tar (entries relative to /, owned by root). */
export async function busyboxRootfsTar(dir: string): Promise<string> {
  const root = await busyboxRootfs(dir);
  const tar = path.join(dir, 'rootfs.tar');
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', root, '-cf', tar, '.']);
  return tar;
}

/** The OCI name of this machine's architecture. */
function ociArch(): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
}

function sha256(data: Buffer): string {
  return 'sha256:' + crypto.createHash('sha256').update(data).digest('hex');
}

/**
 * An OCI image layout archive of the busybox rootfs, one uncompressed layer, named `ref` through the
 * `io.containerd.image.name` annotation (e.g. 'docker.io/tscni/busybox:test'). Returns the archive path.
 */
export async function busyboxOciArchive(dir: string, ref: string): Promise<string> {
  const layerTar = await busyboxRootfsTar(dir);
  const layout = path.join(dir, 'oci');
  const blobs = path.join(layout, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const digest = sha256(data);
    fs.writeFileSync(path.join(blobs, digest.slice('sha256:'.length)), data);
    return { digest, size: data.length };
  };
  const layer = put(fs.readFileSync(layerTar));
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: ociArch(),
        os: 'linux',
        config: { Env: ['PATH=/bin'], Cmd: ['sh'], WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          platform: { architecture: ociArch(), os: 'linux' },
          annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.split(':').pop() },
        },
      ],
    }),
  );
  const archive = path.join(dir, 'image.oci.tar');
  await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', layout, '-cf', archive, '.']);
  return archive;
}
