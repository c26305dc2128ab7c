/*
 * loader: BOOTX64.EFI, the UEFI way into blimp.
 *
 * OVMF runs this gnu-efi application from the EFI system partition. It loads
 * the kernel ELF `\blimp.elf` at its physical addresses, fills the same
 * struct boot_info the PVH path fills (boot/boot_info.h), exits boot
 * services and jumps to the kernel's 64-bit entry (e_entry) with the
 * boot_info pointer in %rdi. UEFI's identity page tables are still in use at
 * that moment; the kernel replaces them at once.
 *
 * The kernel command line comes from, in this order:
 *   1. the image's LoadOptions, when they are printable text — this is what
 *      OVMF passes for `qemu -kernel BOOTX64.EFI -append "..."`;
 *   2. the file `\cmdline.txt` on the volume holding blimp.elf (one line;
 *      trailing white space dropped) — the way to pass one from an ESP;
 *   3. otherwise, empty.
 *
 * Any failure before the jump prints what went wrong and exits QEMU with
 * status 41 (QEMU_EXIT_BOOT_FAILED) through isa-debug-exit.
 */
#include <efi.h>
#include <efilib.h>

#include "boot/boot_info.h"
#include "kernel/memmap.h"
#include "arch/x86_64/qemu_exit.h"

#define KERNEL_PATH L"\\blimp.elf"
#define CMDLINE_PATH L"\\cmdline.txt"
#define MAX_MAP_TRIES 8

/* ELF64 as far as the loader needs it. */
struct elf64_ehdr {
	unsigned char ident[16];
	UINT16 type, machine;
	UINT32 version;
	UINT64 entry, phoff, shoff;
	UINT32 flags;
	UINT16 ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct elf64_phdr {
	UINT32 type, flags;
	UINT64 offset, vaddr, paddr, filesz, memsz, align;
};

#define PT_LOAD 1

static void efi_fail(CHAR16 *what, EFI_STATUS status) __attribute__((noreturn));

static void efi_fail(CHAR16 *what, EFI_STATUS status)
{
	Print(L"blimp-efi: error: %s (%r)\n", what, status);
	__asm__ volatile("outl %0, %1" : : "a"((UINT32)QEMU_EXIT_BOOT_FAILED), "Nd"((UINT16)QEMU_EXIT_PORT));
	for (;;)
		__asm__ volatile("hlt");
}

/* Read a whole file from `root`; NULL (and *size 0) when it does not exist. */
static void *efi_read_file(EFI_FILE_HANDLE root, CHAR16 *path, UINTN *size)
{
	EFI_FILE_HANDLE fh;
	*size = 0;
	if (EFI_ERROR(uefi_call_wrapper(root->Open, 5, root, &fh, path, EFI_FILE_MODE_READ, 0)))
		return NULL;
	EFI_FILE_INFO *info = LibFileInfo(fh);
	if (!info)
		efi_fail(L"cannot get file size", EFI_DEVICE_ERROR);
	UINTN len = info->FileSize;
	FreePool(info);
	void *buf = AllocatePool(len + 1);
	if (!buf)
		efi_fail(L"out of memory reading a file", EFI_OUT_OF_RESOURCES);
	UINTN got = len;
	EFI_STATUS st = uefi_call_wrapper(fh->Read, 3, fh, &got, buf);
	uefi_call_wrapper(fh->Close, 1, fh);
	if (EFI_ERROR(st) || got != len)
		efi_fail(L"reading a file failed", EFI_ERROR(st) ? st : EFI_DEVICE_ERROR);
	((char *)buf)[len] = 0;
	*size = len;
	return buf;
}

/*
 * Find the volume holding the kernel: the one we were loaded from, or, when
 * that has no file system (qemu -kernel loads us from a firmware-made
 * device), the first file system that has \blimp.elf.
 */
static EFI_FILE_HANDLE efi_find_kernel_volume(EFI_HANDLE own_device)
{
	EFI_FILE_HANDLE root = own_device ? LibOpenRoot(own_device) : NULL;
	UINTN size;
	if (root) {
		void *probe = efi_read_file(root, KERNEL_PATH, &size);
		if (probe) {
			FreePool(probe);
			return root;
		}
	}
	UINTN n = 0;
	EFI_HANDLE *handles = NULL;
	if (EFI_ERROR(LibLocateHandle(ByProtocol, &FileSystemProtocol, NULL, &n, &handles)))
		return NULL;
	for (UINTN i = 0; i < n; i++) {
		EFI_FILE_HANDLE r = LibOpenRoot(handles[i]);
		if (!r)
			continue;
		EFI_FILE_HANDLE fh;
		if (!EFI_ERROR(uefi_call_wrapper(r->Open, 5, r, &fh, KERNEL_PATH, EFI_FILE_MODE_READ, 0))) {
			uefi_call_wrapper(fh->Close, 1, fh);
			FreePool(handles);
			return r;
		}
	}
	FreePool(handles);
	return NULL;
}

/* LoadOptions as ASCII, if they are printable UCS-2 text; returns length or -1. */
static int efi_load_options_text(EFI_LOADED_IMAGE *li, char *out, UINTN max)
{
	CHAR16 *opt = li->LoadOptions;
	UINTN n = li->LoadOptionsSize / sizeof(CHAR16);
	UINTN len = 0;
	if (!opt || n == 0)
		return -1;
	for (UINTN i = 0; i < n && opt[i]; i++) {
		if (opt[i] < 0x20 || opt[i] > 0x7e)
			return -1; /* binary data from a boot option, not a command line */
		if (len + 1 < max)
			out[len++] = (char)opt[i];
	}
	out[len] = 0;
	return len > 0 ? (int)len : -1;
}

static void efi_trim(char *s)
{
	UINTN len = strlena((CHAR8 *)s);
	char *nl;
	for (nl = s; *nl && *nl != '\n' && *nl != '\r'; nl++)
		;
	*nl = 0; /* one line */
	len = strlena((CHAR8 *)s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = 0;
}

/* Check the ELF and load its PT_LOAD segments at their physical addresses. */
static UINT64 efi_load_elf(UINT8 *file, UINTN size)
{
	struct elf64_ehdr *eh = (struct elf64_ehdr *)file;
	if (size < sizeof(*eh) || eh->ident[0] != 0x7f || eh->ident[1] != 'E' || eh->ident[2] != 'L' ||
	    eh->ident[3] != 'F')
		efi_fail(L"blimp.elf is not an ELF file", EFI_LOAD_ERROR);
	if (eh->ident[4] != 2 || eh->ident[5] != 1 || eh->machine != 62 || eh->type != 2)
		efi_fail(L"blimp.elf is not a little-endian x86-64 executable", EFI_LOAD_ERROR);
	if (eh->phentsize != sizeof(struct elf64_phdr) || eh->phoff > size ||
	    (UINT64)eh->phnum * sizeof(struct elf64_phdr) > size - eh->phoff)
		efi_fail(L"blimp.elf program headers lie outside the file", EFI_LOAD_ERROR);

	struct elf64_phdr *ph = (struct elf64_phdr *)(file + eh->phoff);
	int loaded = 0;
	for (UINT16 i = 0; i < eh->phnum; i++) {
		if (ph[i].type != PT_LOAD || ph[i].memsz == 0)
			continue;
		if (ph[i].filesz > ph[i].memsz || ph[i].offset > size || ph[i].filesz > size - ph[i].offset ||
		    ph[i].paddr + ph[i].memsz < ph[i].paddr)
			efi_fail(L"blimp.elf has a segment with bad sizes or offsets", EFI_LOAD_ERROR);
		EFI_PHYSICAL_ADDRESS base = ph[i].paddr & ~0xfffULL;
		UINTN pages = (ph[i].paddr + ph[i].memsz - base + 0xfff) >> 12;
		EFI_STATUS st = uefi_call_wrapper(BS->AllocatePages, 4, AllocateAddress, EfiLoaderData,
						  pages, &base);
		if (EFI_ERROR(st)) {
			Print(L"blimp-efi: segment %d wants %lx-%lx, which the firmware uses\n", i,
			      ph[i].paddr, ph[i].paddr + ph[i].memsz);
			efi_fail(L"cannot place the kernel at its load address", st);
		}
		CopyMem((void *)ph[i].paddr, file + ph[i].offset, ph[i].filesz);
		SetMem((UINT8 *)ph[i].paddr + ph[i].filesz, ph[i].memsz - ph[i].filesz, 0);
		loaded++;
	}
	if (!loaded)
		efi_fail(L"blimp.elf has nothing to load", EFI_LOAD_ERROR);
	return eh->entry;
}

static UINT32 efi_type_to_boot(UINT32 t)
{
	switch (t) {
	case EfiConventionalMemory:
	case EfiBootServicesCode:
	case EfiBootServicesData:
	case EfiLoaderCode:
	case EfiLoaderData:
		return BOOT_MEM_USABLE;
	case EfiACPIReclaimMemory:
		return BOOT_MEM_ACPI_RECLAIM;
	case EfiACPIMemoryNVS:
		return BOOT_MEM_ACPI_NVS;
	case EfiUnusableMemory:
		return BOOT_MEM_UNUSABLE;
	default:
		return BOOT_MEM_RESERVED;
	}
}

/* Translate a UEFI map into bi->memmap; no firmware calls (see ExitBootServices). */
static void efi_fill_memmap(struct boot_info *bi, EFI_MEMORY_DESCRIPTOR *map, UINTN map_size,
			    UINTN desc_size)
{
	static struct boot_mem_range tmp[BOOT_MEMMAP_MAX * 2];
	UINT32 n = 0;
	for (UINTN off = 0; off + desc_size <= map_size; off += desc_size) {
		EFI_MEMORY_DESCRIPTOR *d = (EFI_MEMORY_DESCRIPTOR *)((UINT8 *)map + off);
		UINT32 type = efi_type_to_boot(d->Type);
		UINT64 base = d->PhysicalStart, len = d->NumberOfPages << 12;
		/* UEFI maps are sorted: merge on the way in so any map fits. */
		if (n > 0 && tmp[n - 1].type == type && tmp[n - 1].base + tmp[n - 1].size == base) {
			tmp[n - 1].size += len;
			continue;
		}
		if (n == BOOT_MEMMAP_MAX * 2)
			break; /* the highest ranges are lost; normalize keeps the rest right */
		tmp[n].base = base;
		tmp[n].size = len;
		tmp[n].type = type;
		tmp[n].reserved = 0;
		n++;
	}
	memmap_normalize(tmp, &n, BOOT_MEMMAP_MAX * 2);
	if (n > BOOT_MEMMAP_MAX)
		n = BOOT_MEMMAP_MAX;
	CopyMem(bi->memmap, tmp, n * sizeof(tmp[0]));
	bi->memmap_count = n;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	InitializeLib(image, systab);
	Print(L"blimp-efi: loading %s\n", KERNEL_PATH);

	EFI_LOADED_IMAGE *li;
	EFI_STATUS st = uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&li);
	if (EFI_ERROR(st))
		efi_fail(L"no loaded-image protocol", st);

	EFI_FILE_HANDLE root = efi_find_kernel_volume(li->DeviceHandle);
	if (!root)
		efi_fail(L"no volume holds \\blimp.elf", EFI_NOT_FOUND);
	UINTN size;
	UINT8 *file = efi_read_file(root, KERNEL_PATH, &size);
	if (!file)
		efi_fail(L"cannot open \\blimp.elf", EFI_NOT_FOUND);

	/* boot_info below 4 GiB: simple for the kernel, which copies it first thing. */
	EFI_PHYSICAL_ADDRESS bi_addr = 0xffffffff;
	UINTN bi_pages = (sizeof(struct boot_info) + 0xfff) >> 12;
	st = uefi_call_wrapper(BS->AllocatePages, 4, AllocateMaxAddress, EfiLoaderData, bi_pages, &bi_addr);
	if (EFI_ERROR(st))
		efi_fail(L"cannot allocate boot_info", st);
	struct boot_info *bi = (struct boot_info *)bi_addr;
	SetMem(bi, sizeof(*bi), 0);
	bi->magic = BOOT_INFO_MAGIC;
	bi->path = BOOT_PATH_UEFI;

	if (efi_load_options_text(li, bi->cmdline, BOOT_CMDLINE_MAX) < 0) {
		UINTN len;
		char *text = efi_read_file(root, CMDLINE_PATH, &len);
		if (text) {
			efi_trim(text);
			CopyMem(bi->cmdline, text, strlena((CHAR8 *)text) < BOOT_CMDLINE_MAX - 1 ?
						   strlena((CHAR8 *)text) : BOOT_CMDLINE_MAX - 1);
			FreePool(text);
		}
	}

	void *rsdp = NULL;
	if (EFI_ERROR(LibGetSystemConfigurationTable(&AcpiTableGuid, &rsdp)) || !rsdp)
		rsdp = NULL;
	EFI_GUID acpi20_guid = ACPI_20_TABLE_GUID;
	void *rsdp2 = NULL;
	if (!EFI_ERROR(LibGetSystemConfigurationTable(&acpi20_guid, &rsdp2)) && rsdp2)
		rsdp = rsdp2;
	bi->rsdp = (UINT64)rsdp;

	UINT64 entry = efi_load_elf(file, size);
	FreePool(file);
	Print(L"blimp-efi: kernel entry %lx, command line \"%a\"\n", entry, bi->cmdline);

	/*
	 * Get the map and leave boot services; a changed map key means retry.
	 * After a failed ExitBootServices only GetMemoryMap may be called, so
	 * the buffer is allocated once, with room for the map to grow.
	 */
	UINTN map_size = 0, alloc_size, key, desc_size;
	UINT32 desc_version;
	uefi_call_wrapper(BS->GetMemoryMap, 5, &map_size, NULL, &key, &desc_size, &desc_version);
	alloc_size = map_size + 32 * desc_size;
	EFI_MEMORY_DESCRIPTOR *map = AllocatePool(alloc_size);
	if (!map)
		efi_fail(L"cannot allocate the memory map", EFI_OUT_OF_RESOURCES);
	for (int tries = 0;; tries++) {
		map_size = alloc_size;
		st = uefi_call_wrapper(BS->GetMemoryMap, 5, &map_size, map, &key, &desc_size, &desc_version);
		if (EFI_ERROR(st) || tries == MAX_MAP_TRIES)
			efi_fail(L"cannot get a memory map and exit boot services", st);
		/* Nothing that talks to the firmware between here and the exit. */
		efi_fill_memmap(bi, map, map_size, desc_size);
		st = uefi_call_wrapper(BS->ExitBootServices, 2, image, key);
		if (!EFI_ERROR(st))
			break;
	}

	__asm__ volatile("cli");
	((void (*)(struct boot_info *))entry)(bi);
	for (;;)
		__asm__ volatile("hlt");
}
