// Where the browser tests and the headless demo find Chromium, and the flags that give it
// WebGPU. The system chromium (Debian's package ships SwiftShader) is used when present, so
// nothing is downloaded; elsewhere Playwright's own browser. WEBGPU_ADAPTER=gpu picks the
// machine's real GPU instead of SwiftShader.
import { existsSync } from 'node:fs';

const SYSTEM_CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function chromiumExecutable() {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  return SYSTEM_CHROMIUM.find((p) => existsSync(p));
}

export function chromiumArgs() {
  const realGpu = process.env.WEBGPU_ADAPTER === 'gpu';
  return [
    '--enable-unsafe-webgpu',
    ...(realGpu ? ['--ignore-gpu-blocklist'] : ['--use-webgpu-adapter=swiftshader']),
    '--enable-features=Vulkan',
    // Unquantised timestamp queries for the profiler.
    '--enable-webgpu-developer-features',
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--no-first-run',
  ];
}

export function launchOptions() {
  const executablePath = chromiumExecutable();
  return { ...(executablePath ? { executablePath } : {}), args: chromiumArgs() };
}
