#!/usr/bin/python3
"""build_guest: build the Linux reference guest that `make bench` compares blimp with.

The benchmark asks how blimp's virtio-balloon driver does against Linux's on
the same QEMU. The Linux side has to be a real distribution kernel, not one
tuned for the occasion, and must be buildable offline-repeatably from what
this machine already trusts: so everything comes from Debian's own packages.

    /usr/bin/python3 bench/linux/build_guest.py --out build/bench/linux

does, into OUT:

  1. Resolves linux-image-cloud-amd64 (Debian's metapackage) to the versioned
     kernel package it depends on, and finds busybox-static's version
     (apt-cache; the answer is cached while apt's package lists are unchanged,
     because apt-cache takes most of a second on machines without pkgcache.bin).
  2. Downloads both .debs into OUT/debs with `apt-get download` (once) and
     unpacks them with `dpkg-deb -x` into a scratch folder.
  3. Takes the kernel (vmlinuz) and the modules virtio-balloon over PCI needs,
     and virtio-blk for the squeeze's swap disk (bench/squeeze.py).
     The package ships no modules.dep (depmod runs at install time), so the
     dependencies come from each module's own .modinfo "depends=" field; a
     module listed in modules.builtin is part of the kernel and is skipped.
     Compressed modules (.ko.xz, .ko.zst, .ko.gz) are decompressed here.
  4. Compiles bench/linux/touchmem.c and pressmem.c with `gcc -static -O2`.
  5. Writes OUT/initrd.cpio.gz (newc cpio, gzip): busybox with a /bin link per
     applet (init.sh needs sh, insmod, mkswap and swapon among them: checked),
     /init (bench/linux/init.sh), /touchmem, /pressmem, /lib/modules/*.ko and
     /lib/modules/load-order (the insmod order), /dev/console.
  6. Writes OUT/guest.json: {"kernel", "initrd", "append", "kernel_version",
     "packages": {name: version}, "modules": [load order], "builtin": [...],
     "init_on_alloc_default": bool} -- what the harness (bench/guests.py) boots.

A stamp (OUT/stamp) holds a hash of every input: the package versions, the
files in bench/linux/ and this script. When it matches, nothing is done and
the run takes a few tens of milliseconds. A lock (OUT/.lock) keeps two runs
(a test and the bench, say) from building over each other.

Exit status: 0 built or up to date; 3 a package could not be downloaded
(no route to Debian's mirror, or package lists too old: the message gives the
package and the exact command); 1 anything else, with a message saying what.
"""
import argparse
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DEFAULT_OUT = os.path.join(ROOT, "build", "bench", "linux")

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# The drivers the balloon needs: the PCI transport and the balloon itself;
# and virtio_blk, for the swap disk the squeeze gives the guest (init.sh
# swaps on it when it is there). Their dependencies (virtio, virtio_ring,
# virtio_pci_modern_dev, ...) follow.
WANTED_MODULES = ["virtio_pci", "virtio_balloon", "virtio_blk"]
# The busybox applets init.sh cannot do without.
NEEDED_APPLETS = ["sh", "insmod", "mount", "mkswap", "swapon", "poweroff", "awk", "cat", "dd"]
APPEND = "console=ttyS0 quiet panic=-1"

INIT_SCRIPT = os.path.join(HERE, "init.sh")
TOUCHMEM_SOURCE = os.path.join(HERE, "touchmem.c")
PRESSMEM_SOURCE = os.path.join(HERE, "pressmem.c")
PROGRAMS = {"touchmem": TOUCHMEM_SOURCE, "pressmem": PRESSMEM_SOURCE}
INPUT_FILES = [INIT_SCRIPT, TOUCHMEM_SOURCE, PRESSMEM_SOURCE, os.path.abspath(__file__)]

# What apt's answer depends on: if none of these changed, neither did it.
APT_STATE_PATHS = ["/var/lib/apt/lists", "/etc/apt", "/var/lib/dpkg/status"]

EXIT_FAILURE = 1
EXIT_DOWNLOAD_FAILED = 3


class BuildError(Exception):
    def __init__(self, message, status=EXIT_FAILURE):
        super().__init__(message)
        self.status = status


def say(message):
    print(f"build_guest: {message}", flush=True)


def run(command, what, cwd=None, status=EXIT_FAILURE):
    """Run a command, returning its stdout; a failure is a BuildError naming
    `what`, the exact command and the end of its error output."""
    try:
        done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    except FileNotFoundError:
        raise BuildError(f"{what}: {command[0]} is not installed", status)
    if done.returncode != 0:
        shown = " ".join(command) if cwd is None else f"cd {cwd} && {' '.join(command)}"
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise BuildError(f"{what} failed (exit status {done.returncode}).\n"
                         f"  command: {shown}\n  {tail}", status)
    return done.stdout


# ------------------------------------------------------------ 1. which packages
def apt_state_fingerprint():
    """A hash of the names, sizes and modification times of apt's lists,
    configuration and dpkg's status file."""
    entries = []
    for top in APT_STATE_PATHS:
        if os.path.isfile(top):
            paths = [top]
        else:
            paths = [os.path.join(d, f) for d, _, files in os.walk(top) for f in files]
        for path in sorted(paths):
            try:
                st = os.stat(path)
            except OSError:
                continue
            entries.append(f"{path} {st.st_size} {st.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def apt_cache_show(packages):
    """{package: {field: value}} for the candidate version of each package."""
    text = run(["apt-cache", "show", "--no-all-versions"] + packages,
               f"looking up {', '.join(packages)} with apt-cache")
    stanzas = {}
    for block in text.strip().split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Package" in fields:
            stanzas[fields["Package"]] = fields
    for package in packages:
        if package not in stanzas:
            raise BuildError(f"apt-cache knows no candidate for {package}: "
                             f"run `apt-get update` (as root) and try again")
    return stanzas


def kernel_dependency(metapackage_fields):
    """(name, version or None) of the linux-image-* package the metapackage depends on."""
    for clause in metapackage_fields.get("Depends", "").split(","):
        first_choice = clause.split("|")[0].strip()
        name = first_choice.split()[0] if first_choice else ""
        if name.startswith("linux-image-"):
            version = None
            if "(=" in first_choice:
                version = first_choice.split("(=", 1)[1].rstrip(")").strip()
            return name, version
    raise BuildError(f"{KERNEL_METAPACKAGE} depends on no linux-image-* package "
                     f"(Depends: {metapackage_fields.get('Depends', '')!r})")


def resolve_packages(out):
    """{package: version} of the kernel and busybox packages to use, asking
    apt only when its state changed since the last answer."""
    cache_path = os.path.join(out, "resolved.json")
    fingerprint = apt_state_fingerprint()
    try:
        with open(cache_path) as f:
            cached = json.load(f)
        if cached.get("apt_state") == fingerprint:
            return cached["packages"]
    except (OSError, ValueError, KeyError):
        pass
    shown = apt_cache_show([KERNEL_METAPACKAGE, BUSYBOX_PACKAGE])
    kernel_package, kernel_version = kernel_dependency(shown[KERNEL_METAPACKAGE])
    if kernel_version is None:
        kernel_version = apt_cache_show([kernel_package])[kernel_package]["Version"]
    packages = {kernel_package: kernel_version,
                BUSYBOX_PACKAGE: shown[BUSYBOX_PACKAGE]["Version"]}
    write_file(cache_path, json.dumps({"apt_state": fingerprint, "packages": packages},
                                      indent=1).encode())
    return packages


# ------------------------------------------------------------ 2. fetch and unpack
def deb_identity(path):
    fields = run(["dpkg-deb", "--field", path, "Package", "Version"], f"reading {path}")
    values = dict(line.split(": ", 1) for line in fields.strip().splitlines() if ": " in line)
    return values.get("Package"), values.get("Version")


def find_deb(cache, package, version):
    """The cached .deb of package at version, or None; other versions of the
    same package found on the way are deleted (they are no longer wanted)."""
    found = None
    for name in sorted(os.listdir(cache)):
        if not (name.startswith(package + "_") and name.endswith(".deb")):
            continue
        path = os.path.join(cache, name)
        if deb_identity(path) == (package, version):
            found = path
        else:
            os.unlink(path)
    return found


def download_deb(cache, package, version):
    os.makedirs(cache, exist_ok=True)
    path = find_deb(cache, package, version)
    if path:
        return path
    say(f"downloading {package} {version} into {cache}")
    command = ["apt-get", "download", f"{package}={version}"]
    if os.geteuid() == 0:
        # As root apt would try to drop to its _apt user, which cannot write
        # here, and warn; the download itself is the same.
        command[1:1] = ["-o", "APT::Sandbox::User=root"]
    try:
        run(command, f"apt-get download of Debian package {package} {version}", cwd=cache,
            status=EXIT_DOWNLOAD_FAILED)
    except BuildError as e:
        raise BuildError(f"{e}\n  Is Debian's mirror reachable? If it is, the package lists may "
                         f"be stale: run `apt-get update` and try again.", e.status)
    path = find_deb(cache, package, version)
    if not path:
        raise BuildError(f"apt-get download said it fetched {package} {version}, "
                         f"but no such .deb is in {cache}")
    return path


# ------------------------------------------------------------ 3. kernel and modules
def module_name(file_name):
    """virtio_pci from virtio_pci.ko / virtio_pci.ko.zst; '-' and '_' are one to modprobe."""
    return os.path.basename(file_name).split(".ko")[0].replace("-", "_")


def read_module(path):
    """The uncompressed bytes of a .ko, .ko.xz, .ko.zst or .ko.gz."""
    if path.endswith(".ko"):
        with open(path, "rb") as f:
            return f.read()
    if path.endswith(".xz"):
        with open(path, "rb") as f:
            return lzma.decompress(f.read())
    if path.endswith(".gz"):
        with open(path, "rb") as f:
            return gzip.decompress(f.read())
    if path.endswith(".zst"):
        try:
            return subprocess.run(["zstd", "-dc", path], stdout=subprocess.PIPE,
                                  check=True).stdout
        except FileNotFoundError:
            raise BuildError(f"{path} is zstd-compressed and the zstd tool is missing: "
                             f"apt-get install zstd")
        except subprocess.CalledProcessError as e:
            raise BuildError(f"zstd -dc {path} failed with status {e.returncode}")
    raise BuildError(f"{path}: unknown module compression")


def modinfo(elf, where):
    """The key=value pairs of a module's .modinfo ELF section (what modinfo shows)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise BuildError(f"{where} is not a 64-bit ELF module")
    section_offset, = struct.unpack_from("<Q", elf, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index):
        header = struct.unpack_from("<IIQQQQIIQQ", elf, section_offset + index * entry_size)
        return header[0], header[4], header[5]      # name offset, file offset, size
    _, names_at, _ = section(names_index)
    for index in range(count):
        name_at, offset, size = section(index)
        name = elf[names_at + name_at:elf.index(b"\0", names_at + name_at)]
        if name == b".modinfo":
            info = {}
            for item in elf[offset:offset + size].split(b"\0"):
                if b"=" in item:
                    key, value = item.decode("utf-8", "replace").split("=", 1)
                    info.setdefault(key, value)
            return info
    raise BuildError(f"{where} has no .modinfo section")


def modules_in_load_order(module_dir, wanted):
    """([(name, uncompressed bytes)] dependencies first, [names built in]) for
    the wanted modules and everything they depend on."""
    builtin = set()
    with open(os.path.join(module_dir, "modules.builtin")) as f:
        for line in f:
            if line.strip():
                builtin.add(module_name(line.strip()))
    files = {}
    for folder, _, names in os.walk(os.path.join(module_dir, "kernel")):
        for name in names:
            if ".ko" in name:
                files[module_name(name)] = os.path.join(folder, name)

    ordered, builtin_seen, visiting = [], [], set()

    def visit(name, wanted_by):
        if name in builtin:
            if name not in builtin_seen:
                builtin_seen.append(name)
            return
        if any(name == done for done, _ in ordered):
            return
        if name in visiting:
            raise BuildError(f"module dependency loop through {name}")
        if name not in files:
            raise BuildError(f"module {name} (needed by {wanted_by}) is neither in "
                             f"{module_dir}/kernel nor in modules.builtin")
        visiting.add(name)
        elf = read_module(files[name])
        for dep in filter(None, modinfo(elf, files[name]).get("depends", "").split(",")):
            visit(module_name(dep), name)
        visiting.discard(name)
        ordered.append((name, elf))

    for name in wanted:
        visit(name, "the guest's init")
    return ordered, builtin_seen


def kernel_config(config_path):
    config = {}
    with open(config_path) as f:
        for line in f:
            if line.startswith("CONFIG_") and "=" in line:
                key, value = line.strip().split("=", 1)
                config[key] = value
    return config


# ------------------------------------------------------------ 4. touchmem, pressmem
def compile_program(source, output):
    run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", output, source],
        f"compiling {source} (needs gcc and libc6-dev)")


# ------------------------------------------------------------ 5. initramfs
class CpioWriter:
    """An archive in the cpio "newc" format, the one the kernel unpacks as
    its initramfs: per entry a 110-byte ASCII header, the name, the data,
    each padded to 4 bytes; a "TRAILER!!!" entry last. Owners are root and
    times zero, so the same inputs give the same bytes."""

    S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000

    def __init__(self):
        self.parts = []
        self.next_inode = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_bytes = name.encode() + b"\0"
        fields = [self.next_inode, mode, 0, 0, 2 if mode & self.S_IFDIR else 1, 0, len(data),
                  0, 0, rdev[0], rdev[1], len(name_bytes), 0]
        self.next_inode += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.parts += [header, name_bytes, b"\0" * (-(len(header) + len(name_bytes)) % 4),
                       data, b"\0" * (-len(data) % 4)]

    def directory(self, name):
        self._entry(name, self.S_IFDIR | 0o755)

    def file(self, name, data, permissions=0o644):
        self._entry(name, self.S_IFREG | permissions, data)

    def symlink(self, name, target):
        self._entry(name, self.S_IFLNK | 0o777, target.encode())

    def char_device(self, name, major, minor, permissions=0o600):
        self._entry(name, self.S_IFCHR | permissions, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


def busybox_applets(busybox):
    names = run([busybox, "--list"], f"listing the applets of {busybox}").split()
    missing = [name for name in NEEDED_APPLETS if name not in names]
    if missing:
        raise BuildError(f"{busybox} lacks the applet(s) init.sh needs: {', '.join(missing)}")
    return [name for name in names if name != "busybox" and "/" not in name]


def build_initramfs(busybox, programs, modules):
    """programs: {name in / : path of the static binary}."""
    archive = CpioWriter()
    for folder in ["bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"]:
        archive.directory(folder)
    archive.char_device("dev/console", 5, 1)      # init's stdin/stdout before devtmpfs
    with open(busybox, "rb") as f:
        archive.file("bin/busybox", f.read(), 0o755)
    for applet in busybox_applets(busybox):
        archive.symlink(f"bin/{applet}", "busybox")
    with open(INIT_SCRIPT, "rb") as f:
        archive.file("init", f.read(), 0o755)
    for name, path in sorted(programs.items()):
        with open(path, "rb") as f:
            archive.file(name, f.read(), 0o755)
    for name, elf in modules:
        archive.file(f"lib/modules/{name}.ko", elf)
    archive.file("lib/modules/load-order", "".join(f"{name}.ko\n" for name, _ in modules).encode())
    return gzip.compress(archive.finish(), compresslevel=9, mtime=0)


# ------------------------------------------------------------ the build
def write_file(path, data):
    """Write through a temporary file and rename, so readers never see half a file."""
    temporary = path + ".tmp"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def inputs_hash(packages):
    digest = hashlib.sha256()
    digest.update(json.dumps([packages, APPEND, WANTED_MODULES], sort_keys=True).encode())
    for path in INPUT_FILES:
        with open(path, "rb") as f:
            digest.update(path.encode() + b"\0" + f.read())
    return digest.hexdigest()


def build(out, packages, scratch):
    debs = [download_deb(os.path.join(out, "debs"), name, version)
            for name, version in sorted(packages.items())]
    unpacked = os.path.join(scratch, "root")
    for deb in debs:
        say(f"unpacking {os.path.basename(deb)}")
        run(["dpkg-deb", "-x", deb, unpacked], f"unpacking {deb}")

    versions = os.listdir(os.path.join(unpacked, "lib", "modules"))
    if len(versions) != 1:
        raise BuildError(f"expected one kernel in the package, found modules for {versions}")
    kernel_version = versions[0]
    vmlinuz = os.path.join(unpacked, "boot", f"vmlinuz-{kernel_version}")
    if not os.path.exists(vmlinuz):
        raise BuildError(f"the kernel package has no boot/vmlinuz-{kernel_version}")
    config = kernel_config(os.path.join(unpacked, "boot", f"config-{kernel_version}"))

    modules, builtin = modules_in_load_order(
        os.path.join(unpacked, "lib", "modules", kernel_version), WANTED_MODULES)
    say(f"Linux {kernel_version}: modules {', '.join(n for n, _ in modules) or 'none'}"
        f"; built in: {', '.join(builtin) or 'none'}")

    programs = {}
    for name, source in PROGRAMS.items():
        programs[name] = os.path.join(out, name)
        compile_program(source, programs[name])
    initrd = build_initramfs(os.path.join(unpacked, "bin", "busybox"), programs, modules)

    kernel_out = os.path.join(out, "vmlinuz")
    initrd_out = os.path.join(out, "initrd.cpio.gz")
    shutil.copyfile(vmlinuz, kernel_out + ".tmp")
    os.replace(kernel_out + ".tmp", kernel_out)
    write_file(initrd_out, initrd)
    guest = {
        "kernel": kernel_out,
        "initrd": initrd_out,
        "append": APPEND,
        "kernel_version": kernel_version,
        "packages": packages,
        "modules": [name for name, _ in modules],
        "builtin": builtin,
        "init_on_alloc_default": config.get("CONFIG_INIT_ON_ALLOC_DEFAULT_ON") == "y",
    }
    write_file(os.path.join(out, "guest.json"), (json.dumps(guest, indent=2) + "\n").encode())
    say(f"wrote {out}/guest.json (initrd {len(initrd) >> 10} KiB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="folder for the guest, its stamp and its .deb cache "
                             "(default build/bench/linux)")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    started = time.monotonic()
    try:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            packages = resolve_packages(out)
            stamp_path = os.path.join(out, "stamp")
            wanted_stamp = inputs_hash(packages)
            outputs = [os.path.join(out, name) for name in ("guest.json", "vmlinuz",
                                                              "initrd.cpio.gz")]
            try:
                with open(stamp_path) as f:
                    current = f.read().strip() == wanted_stamp
            except OSError:
                current = False
            if current and all(os.path.exists(path) for path in outputs):
                say(f"up to date: {out}/guest.json")
                return 0
            if os.path.exists(stamp_path):
                os.unlink(stamp_path)
            with tempfile.TemporaryDirectory(prefix=".unpack-", dir=out) as scratch:
                build(out, packages, scratch)
            write_file(stamp_path, (wanted_stamp + "\n").encode())
            say(f"built in {time.monotonic() - started:.1f} s")
            return 0
    except BuildError as e:
        print(f"build_guest: error: {e}", file=sys.stderr)
        return e.status
    except OSError as e:
        print(f"build_guest: error: {e}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
