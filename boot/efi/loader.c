/*
 * loader: BOOTX64.EFI, the UEFI way into blimp.
 *
 * OVMF runs this gnu-efi application. It loads the kernel ELF \blimp.elf at
 * its physical addresses, fills the struct boot_info the PVH path fills too
 * (boot/boot_info.h), leaves boot services and jumps to the kernel's 64-bit
 * entry point, `void entry(struct boot_info *bi)`, with UEFI's identity page
 * tables still in use and interrupts off.
 *
 * Where \blimp.elf comes from: the volume this loader was loaded from. With
 * `qemu -bios OVMF.fd -kernel BOOTX64.EFI`, OVMF loads the loader out of a
 * small file system of its own that holds only QEMU's -kernel/-initrd/
 * -append blobs, so when the boot volume has no \blimp.elf every other file
 * system is tried in firmware order and the first holding it wins; attach the
 * ESP as well (`-drive format=raw,file=fat:rw:DIR`).
 *
 * The kernel command line, first match wins:
 *   1. The image's LoadOptions, when they are printable UCS-2 text. This is
 *      how `-kernel BOOTX64.EFI -append "..."` arrives: OVMF converts the
 *      -append text to UCS-2 and passes it as LoadOptions. A start from the
 *      boot manager passes the boot option's OptionalData instead (binary,
 *      e.g. a 16-byte GUID on OVMF's auto-created options) or nothing: not
 *      text, so it is ignored.
 *   2. \cmdline.txt on the volume that holds \blimp.elf: ASCII, trailing
 *      white space (the final newline) dropped, line breaks inside it read
 *      as spaces. The way to give a command line when booting from an ESP.
 *   3. Otherwise the command line is empty.
 * A command line longer than boot_info can hold is an error, not truncated.
 *
 * Any failure before the jump prints what went wrong, writes a boot_failed
 * event line to COM1 (as the PVH path does for a command line too long; see
 * docs/events.md), exits QEMU with status
 * 41 (QEMU_EXIT_BOOT_FAILED) through isa-debug-exit and, without that device,
 * returns the error to the firmware. Once ExitBootServices has been called
 * the firmware console may be gone: from then on messages go straight to
 * COM1.
 */
#include <efi.h>
#include <efilib.h>

#include "arch/x86_64/qemu_exit.h"
#include "boot/boot_info.h"
#include "boot/efi/elf.h"
#include "kernel/memmap.h"

#define EFI_KERNEL_PATH L"\\blimp.elf"
#define EFI_CMDLINE_PATH L"\\cmdline.txt"
#define EFI_CMDLINE_FILE_MAX (64 * 1024) /* a bigger cmdline.txt is a mistake */
#define EFI_EXIT_TRIES 8                 /* GetMemoryMap + ExitBootServices rounds */
#define EFI_COM1 0x3f8

/* After the first ExitBootServices call only memory services may be used. */
static int efi_console_gone;

/* Why the boot failed, for the boot_failed event; the command line's length
 * when that was the reason. */
static const char *efi_fail_why = "loader error";
static UINT64 efi_fail_cmdline_len;

static inline void efi_outb(UINT16 port, UINT8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline UINT8 efi_inb(UINT16 port)
{
	UINT8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/*
 * Write ASCII straight to COM1, for when the firmware console may be gone.
 * OVMF left the UART programmed; the wait is bounded so a missing UART
 * (reads as 0xff) cannot hang us.
 */
static void efi_serial_puts(const char *s)
{
	for (; *s; s++) {
		for (int i = 0; i < 100000 && !(efi_inb(EFI_COM1 + 5) & 0x20); i++)
			;
		efi_outb(EFI_COM1, (UINT8)*s);
	}
}

/* Write v to COM1 as 0x-prefixed hex. */
static void efi_serial_hex(UINT64 v)
{
	char buf[19] = "0x";
	int n = 2;
	for (int shift = 60; shift >= 0; shift -= 4)
		if ((v >> shift) || shift == 0 || n > 2)
			buf[n++] = "0123456789abcdef"[(v >> shift) & 0xf];
	buf[n] = 0;
	efi_serial_puts(buf);
}

/* Write v to COM1 in decimal. */
static void efi_serial_dec(UINT64 v)
{
	char buf[21];
	int n = sizeof(buf) - 1;
	buf[n] = 0;
	do
		buf[--n] = (char)('0' + v % 10);
	while (v /= 10);
	efi_serial_puts(buf + n);
}

/*
 * The boot_failed event (docs/events.md) straight to COM1, on a line of its
 * own, for the tools that read event lines: the firmware console's text may
 * carry terminal escapes. No clock yet: t_ms is 0.
 */
static void efi_boot_failed_event(void)
{
	efi_serial_puts("\r\n@ev {\"ev\":\"boot_failed\",\"t_ms\":0,\"boot\":\"uefi\",\"why\":\"");
	efi_serial_puts(efi_fail_why);
	efi_serial_puts("\"");
	if (efi_fail_cmdline_len) {
		efi_serial_puts(",\"cmdline_len\":");
		efi_serial_dec(efi_fail_cmdline_len);
		efi_serial_puts(",\"cmdline_max\":");
		efi_serial_dec(BOOT_CMDLINE_MAX - 1);
	}
	efi_serial_puts("}\r\n");
}

/* Report a failure on the firmware console; returns `s` for the caller to pass up. */
static EFI_STATUS efi_error(EFI_STATUS s, CHAR16 *fmt, ...)
{
	va_list ap;
	Print(L"blimp-efi: error: ");
	va_start(ap, fmt);
	VPrint(fmt, ap);
	va_end(ap);
	Print(L" (%r)\n", s);
	return s;
}

/* Report a failure after ExitBootServices was called, on COM1; returns `s`. */
static EFI_STATUS efi_late_error(const char *what, EFI_STATUS s)
{
	efi_serial_puts("blimp-efi: error: ");
	efi_serial_puts(what);
	efi_serial_puts(" (EFI status ");
	efi_serial_hex(s);
	efi_serial_puts(")\r\n");
	return s;
}

/* Name of a UEFI memory type, for messages. */
static CHAR16 *efi_mem_type_name(UINT32 type)
{
	static CHAR16 *names[] = {
		L"EfiReservedMemoryType", L"EfiLoaderCode", L"EfiLoaderData",
		L"EfiBootServicesCode", L"EfiBootServicesData", L"EfiRuntimeServicesCode",
		L"EfiRuntimeServicesData", L"EfiConventionalMemory", L"EfiUnusableMemory",
		L"EfiACPIReclaimMemory", L"EfiACPIMemoryNVS", L"EfiMemoryMappedIO",
		L"EfiMemoryMappedIOPortSpace", L"EfiPalCode", L"EfiPersistentMemory",
		L"EfiUnacceptedMemoryType",
	};
	return type < sizeof(names) / sizeof(names[0]) ? names[type] : L"an OEM/OS memory type";
}

/* The boot_info type for a UEFI memory type (E820 numbering, boot_info.h). */
static UINT32 efi_boot_mem_type(UINT32 type)
{
	switch (type) {
	case EfiConventionalMemory:
	case EfiBootServicesCode:
	case EfiBootServicesData:
	case EfiLoaderCode:
	case EfiLoaderData:
		return BOOT_MEM_USABLE; /* free once boot services are gone */
	case EfiACPIReclaimMemory:
		return BOOT_MEM_ACPI_RECLAIM;
	case EfiACPIMemoryNVS:
		return BOOT_MEM_ACPI_NVS;
	case EfiUnusableMemory:
		return BOOT_MEM_UNUSABLE;
	default:
		/* Runtime services, MMIO, reserved, persistent, unaccepted, unknown. */
		return BOOT_MEM_RESERVED;
	}
}

/* Firmware's text for a handle's device path; free it with FreePool. Never NULL. */
static CHAR16 *efi_handle_name(EFI_HANDLE h)
{
	EFI_DEVICE_PATH *dp = h ? DevicePathFromHandle(h) : NULL;
	CHAR16 *s = dp ? DevicePathToStr(dp) : NULL;
	return s ? s : PoolPrint(L"handle %lx (no device path)", (UINT64)(UINTN)h);
}

/*
 * Open \blimp.elf on the file system of handle `dev`. On success *root (the
 * volume) and *file are open; on failure neither is, and the status says why
 * (EFI_UNSUPPORTED: no file system there; EFI_NOT_FOUND: no such file).
 */
static EFI_STATUS efi_try_volume(EFI_HANDLE dev, EFI_FILE_HANDLE *root, EFI_FILE_HANDLE *file)
{
	EFI_SIMPLE_FILE_SYSTEM_PROTOCOL *fs;
	if (!dev)
		return EFI_UNSUPPORTED;
	EFI_STATUS s = BS->HandleProtocol(dev, &gEfiSimpleFileSystemProtocolGuid, (void **)&fs);
	if (EFI_ERROR(s))
		return s;
	s = fs->OpenVolume(fs, root);
	if (EFI_ERROR(s))
		return s;
	s = (*root)->Open(*root, file, EFI_KERNEL_PATH, EFI_FILE_MODE_READ, 0);
	if (EFI_ERROR(s))
		(*root)->Close(*root);
	return s;
}

/*
 * Open \blimp.elf: on the boot volume if it is there, else on the first
 * other file system that has it (see the top of the file). Prints where it
 * was found. On failure says which volumes were searched.
 */
static EFI_STATUS efi_open_kernel(EFI_LOADED_IMAGE *li, EFI_FILE_HANDLE *root, EFI_FILE_HANDLE *file)
{
	CHAR16 *name = efi_handle_name(li->DeviceHandle);
	EFI_STATUS s = efi_try_volume(li->DeviceHandle, root, file);
	if (!EFI_ERROR(s)) {
		Print(L"blimp-efi: kernel %s on the boot volume %s\n", EFI_KERNEL_PATH, name);
		FreePool(name);
		return s;
	}
	Print(L"blimp-efi: no %s on the boot volume %s (%r); searching the other file systems\n",
	      EFI_KERNEL_PATH, name, s);
	FreePool(name);

	UINTN n = 0;
	EFI_HANDLE *h = NULL;
	s = BS->LocateHandleBuffer(ByProtocol, &gEfiSimpleFileSystemProtocolGuid, NULL, &n, &h);
	if (EFI_ERROR(s))
		return efi_error(s, L"no file system other than the boot volume to look for %s on",
				 EFI_KERNEL_PATH);
	for (UINTN i = 0; i < n; i++) {
		if (h[i] == li->DeviceHandle || EFI_ERROR(efi_try_volume(h[i], root, file)))
			continue;
		name = efi_handle_name(h[i]);
		Print(L"blimp-efi: kernel %s on %s\n", EFI_KERNEL_PATH, name);
		FreePool(name);
		FreePool(h);
		return EFI_SUCCESS;
	}
	FreePool(h);
	return efi_error(EFI_NOT_FOUND, L"%s is on no file system (%ld searched, the boot volume "
			 L"included); attach the ESP, e.g. -drive format=raw,file=fat:rw:DIR",
			 EFI_KERNEL_PATH, (UINT64)n);
}

/* Read `len` bytes at `off` of `f` into `dst`; a short file is an error naming `what`. */
static EFI_STATUS efi_read_at(EFI_FILE_HANDLE f, UINT64 off, void *dst, UINT64 len, CHAR16 *what)
{
	EFI_STATUS s = f->SetPosition(f, off);
	if (EFI_ERROR(s))
		return efi_error(s, L"cannot seek to byte %ld of %s", off, what);
	UINT8 *p = dst;
	while (len > 0) {
		UINTN got = len;
		s = f->Read(f, &got, p);
		if (EFI_ERROR(s))
			return efi_error(s, L"reading %s failed at byte %ld", what, off);
		if (got == 0)
			return efi_error(EFI_END_OF_FILE, L"%s ends at byte %ld, before the data it describes",
					 what, off);
		p += got;
		off += got;
		len -= got;
	}
	return EFI_SUCCESS;
}

/* Size in bytes of an open file, through *size. */
static EFI_STATUS efi_file_size(EFI_FILE_HANDLE f, CHAR16 *what, UINT64 *size)
{
	EFI_FILE_INFO *info = LibFileInfo(f);
	if (!info)
		return efi_error(EFI_DEVICE_ERROR, L"cannot get the size of %s", what);
	*size = info->FileSize;
	FreePool(info);
	return EFI_SUCCESS;
}

/*
 * The command line from LoadOptions into out[BOOT_CMDLINE_MAX]; *found is
 * set when they held text (trailing blanks dropped). Binary options are
 * ignored with a note. Text too long for boot_info is an error.
 */
static EFI_STATUS efi_cmdline_from_options(EFI_LOADED_IMAGE *li, char *out, int *found)
{
	const UINT8 *opt = li->LoadOptions; /* UCS-2, read bytewise: no alignment promised */
	UINTN bytes = opt ? li->LoadOptionsSize : 0;
	UINTN len = 0;

	*found = 0;
	if (bytes == 0)
		return EFI_SUCCESS;
	int text = bytes % 2 == 0;
	for (; text && len < bytes / 2; len++) {
		UINT16 c = opt[2 * len] | (UINT16)(opt[2 * len + 1] << 8);
		if (c == 0)
			break;
		text = c >= 0x20 && c <= 0x7e;
	}
	if (!text) {
		Print(L"blimp-efi: LoadOptions are %ld bytes of data, not text: ignored\n", (UINT64)bytes);
		return EFI_SUCCESS;
	}
	while (len > 0 && opt[2 * (len - 1)] == ' ')
		len--;
	if (len == 0)
		return EFI_SUCCESS;
	if (len >= BOOT_CMDLINE_MAX) {
		efi_fail_why = "command line too long";
		efi_fail_cmdline_len = len;
		return efi_error(EFI_BAD_BUFFER_SIZE, L"the command line (LoadOptions) is %ld characters; "
				 L"boot_info holds at most %d", (UINT64)len, BOOT_CMDLINE_MAX - 1);
	}
	for (UINTN i = 0; i < len; i++)
		out[i] = (char)opt[2 * i];
	out[len] = 0;
	*found = 1;
	return EFI_SUCCESS;
}

/*
 * The command line from \cmdline.txt on `root` into out[BOOT_CMDLINE_MAX];
 * *found is set when the file exists. See the top of the file for the
 * format; a byte that is not printable ASCII is an error naming its offset.
 */
static EFI_STATUS efi_cmdline_from_file(EFI_FILE_HANDLE root, char *out, int *found)
{
	EFI_FILE_HANDLE f;
	UINT64 size = 0;
	*found = 0;
	EFI_STATUS s = root->Open(root, &f, EFI_CMDLINE_PATH, EFI_FILE_MODE_READ, 0);
	if (s == EFI_NOT_FOUND)
		return EFI_SUCCESS;
	if (EFI_ERROR(s))
		return efi_error(s, L"cannot open %s", EFI_CMDLINE_PATH);
	s = efi_file_size(f, EFI_CMDLINE_PATH, &size);
	if (!EFI_ERROR(s) && size > EFI_CMDLINE_FILE_MAX)
		s = efi_error(EFI_BAD_BUFFER_SIZE, L"%s is %ld bytes: it should be one line",
			      EFI_CMDLINE_PATH, size);
	UINT8 *text = EFI_ERROR(s) ? NULL : AllocatePool(size + 1);
	if (!EFI_ERROR(s) && !text)
		s = efi_error(EFI_OUT_OF_RESOURCES, L"no memory to read %s", EFI_CMDLINE_PATH);
	if (!EFI_ERROR(s))
		s = efi_read_at(f, 0, text, size, EFI_CMDLINE_PATH);
	f->Close(f);
	if (EFI_ERROR(s)) {
		if (text)
			FreePool(text);
		return s;
	}

	UINT64 start = 0, len = 0, keep = 0; /* keep: length up to the last non-blank */
	if (size >= 3 && text[0] == 0xef && text[1] == 0xbb && text[2] == 0xbf)
		start = 3; /* a UTF-8 byte order mark some editors write */
	for (UINT64 i = start; i < size; i++) {
		UINT8 c = text[i];
		if (c == '\n' || c == '\r' || c == '\t')
			c = ' ';
		if (c < 0x20 || c > 0x7e) {
			FreePool(text);
			return efi_error(EFI_INVALID_PARAMETER, L"byte %ld of %s is 0x%02x, not printable ASCII",
					 i, EFI_CMDLINE_PATH, (UINT32)c);
		}
		if (len < BOOT_CMDLINE_MAX - 1)
			out[len] = (char)c;
		len++;
		if (c != ' ')
			keep = len;
	}
	FreePool(text);
	if (keep > BOOT_CMDLINE_MAX - 1) {
		efi_fail_why = "command line too long";
		efi_fail_cmdline_len = keep;
		return efi_error(EFI_BAD_BUFFER_SIZE, L"the command line in %s is %ld characters; "
				 L"boot_info holds at most %d", EFI_CMDLINE_PATH, keep, BOOT_CMDLINE_MAX - 1);
	}
	len = keep;
	out[len] = 0;
	*found = 1;
	return EFI_SUCCESS;
}

/*
 * Say what holds [start, end) when AllocatePages could not have it: every
 * overlapping descriptor of the current memory map that is not free.
 */
static void efi_explain_taken(UINT64 start, UINT64 end, EFI_LOADED_IMAGE *li)
{
	UINTN n, key, dsize;
	UINT32 dver;
	EFI_MEMORY_DESCRIPTOR *map = LibMemoryMap(&n, &key, &dsize, &dver);
	if (!map) {
		Print(L"blimp-efi:   (no memory map to tell what holds it)\n");
		return;
	}
	UINT64 own = (UINT64)(UINTN)li->ImageBase, covered = 0;
	for (UINTN i = 0; i < n; i++) {
		EFI_MEMORY_DESCRIPTOR *d = (EFI_MEMORY_DESCRIPTOR *)((UINT8 *)map + i * dsize);
		UINT64 b = d->PhysicalStart, e = b + (d->NumberOfPages << 12);
		if (e <= start || b >= end)
			continue;
		covered += (e < end ? e : end) - (b > start ? b : start);
		if (d->Type == EfiConventionalMemory)
			continue;
		Print(L"blimp-efi:   0x%lx-0x%lx is %s%s\n", b, e, efi_mem_type_name(d->Type),
		      own >= b && own < e ? L" (this loader's own image)" : L"");
	}
	if (covered < end - start)
		Print(L"blimp-efi:   %ld KiB of it is not in the memory map: no RAM there\n",
		      (end - start - covered) >> 10);
	FreePool(map);
}

/*
 * Check \blimp.elf and place its PT_LOAD segments at their physical
 * addresses in EfiLoaderData pages: file bytes copied, the rest zeroed.
 * Only the headers and the segments' bytes are read, not the debug info.
 * Fills *img; on failure says what is wrong with the file or which memory
 * is in the way.
 */
static EFI_STATUS efi_load_kernel(EFI_FILE_HANDLE f, EFI_LOADED_IMAGE *li, struct efi_elf_image *img)
{
	UINT8 ehdr[EFI_ELF_EHDR_SIZE] = { 0 };
	UINT64 size = 0;
	EFI_STATUS s = efi_file_size(f, EFI_KERNEL_PATH, &size);
	if (EFI_ERROR(s))
		return s;
	s = efi_read_at(f, 0, ehdr, size < sizeof(ehdr) ? size : sizeof(ehdr), EFI_KERNEL_PATH);
	if (EFI_ERROR(s))
		return s;
	const char *why = efi_elf_check_header(ehdr, size, img);
	if (why)
		return efi_error(EFI_LOAD_ERROR, L"%s (%ld bytes) is not a kernel blimp can boot: %a",
				 EFI_KERNEL_PATH, size, why);

	UINT8 *phdrs = AllocatePool(img->phnum * EFI_ELF_PHDR_SIZE);
	if (!phdrs)
		return efi_error(EFI_OUT_OF_RESOURCES, L"no memory for %d program headers", img->phnum);
	s = efi_read_at(f, img->phoff, phdrs, img->phnum * EFI_ELF_PHDR_SIZE, EFI_KERNEL_PATH);
	int bad = -1;
	why = EFI_ERROR(s) ? NULL : efi_elf_check_segments(phdrs, img, &bad);
	if (why && bad >= 0) {
		UINT8 *ph = phdrs + bad * EFI_ELF_PHDR_SIZE;
		Print(L"blimp-efi: program header %d: offset 0x%lx vaddr 0x%lx paddr 0x%lx filesz 0x%lx "
		      L"memsz 0x%lx (file is 0x%lx bytes)\n", bad, *(UINT64 *)(ph + 8), *(UINT64 *)(ph + 16),
		      *(UINT64 *)(ph + 24), *(UINT64 *)(ph + 32), *(UINT64 *)(ph + 40), size);
	}
	FreePool(phdrs);
	if (EFI_ERROR(s))
		return s;
	if (why)
		return efi_error(EFI_LOAD_ERROR, L"%s is not a kernel blimp can boot: %a", EFI_KERNEL_PATH, why);

	UINT64 done = 0; /* segments may share a page: each page is allocated once */
	for (UINT32 i = 0; i < img->nload; i++) {
		struct efi_elf_load *l = &img->load[i];
		UINT64 start = efi_elf_page_start(l), end = efi_elf_page_end(l);
		if (start < done)
			start = done;
		if (start < end) {
			EFI_PHYSICAL_ADDRESS at = start;
			s = BS->AllocatePages(AllocateAddress, EfiLoaderData, (end - start) >> 12, &at);
			if (EFI_ERROR(s)) {
				efi_error(s, L"cannot place kernel segment %d at 0x%lx-0x%lx: the memory is "
					  L"taken or missing", l->index, start, end);
				efi_explain_taken(start, end, li);
				return s;
			}
			done = end;
		}
		s = efi_read_at(f, l->offset, (void *)(UINTN)l->paddr, l->filesz, EFI_KERNEL_PATH);
		if (EFI_ERROR(s))
			return s;
		ZeroMem((UINT8 *)(UINTN)l->paddr + l->filesz, l->memsz - l->filesz);
	}
	return EFI_SUCCESS;
}

/*
 * The ACPI RSDP from the firmware's configuration table: the ACPI 2.0 entry
 * (an XSDT) if there is one, else the 1.0 one. 0 if neither exists or the
 * table found does not start with "RSD PTR ".
 */
static UINT64 efi_find_rsdp(void)
{
	EFI_GUID acpi20 = ACPI_20_TABLE_GUID, acpi10 = ACPI_TABLE_GUID;
	UINT8 *v20 = NULL, *v10 = NULL;
	for (UINTN i = 0; i < ST->NumberOfTableEntries; i++) {
		EFI_CONFIGURATION_TABLE *t = &ST->ConfigurationTable[i];
		if (!CompareGuid(&t->VendorGuid, &acpi20))
			v20 = t->VendorTable;
		else if (!CompareGuid(&t->VendorGuid, &acpi10))
			v10 = t->VendorTable;
	}
	UINT8 *r = v20 ? v20 : v10;
	if (!r) {
		Print(L"blimp-efi: no ACPI RSDP in the configuration table: the kernel gets none\n");
		return 0;
	}
	if (CompareMem(r, "RSD PTR ", 8)) {
		Print(L"blimp-efi: the ACPI table at 0x%lx has no \"RSD PTR \" signature: not passed on\n",
		      (UINT64)(UINTN)r);
		return 0;
	}
	Print(L"blimp-efi: ACPI %s RSDP at 0x%lx (revision %d)\n", v20 ? L"2.0" : L"1.0",
	      (UINT64)(UINTN)r, (int)r[15]);
	return (UINT64)(UINTN)r;
}

/*
 * Translate a UEFI memory map into bi->memmap and normalize it with the
 * kernel's own memmap_normalize. Pure computation, no firmware call and no
 * output: it runs between GetMemoryMap and ExitBootServices. Returns how
 * many ranges did not fit (0 in any map seen; those lost are the highest).
 */
static UINT32 efi_translate_map(struct boot_info *bi, const UINT8 *map, UINTN size, UINTN dsize)
{
	static struct boot_mem_range raw[BOOT_MEMMAP_MAX * 2];
	UINT32 n = 0, lost = 0;
	for (UINTN off = 0; off + dsize <= size; off += dsize) {
		const EFI_MEMORY_DESCRIPTOR *d = (const EFI_MEMORY_DESCRIPTOR *)(map + off);
		UINT32 type = efi_boot_mem_type(d->Type);
		UINT64 len = d->NumberOfPages << 12;
		/* UEFI lists one descriptor per allocation: merge on the way in. */
		if (n > 0 && raw[n - 1].type == type && raw[n - 1].base + raw[n - 1].size == d->PhysicalStart) {
			raw[n - 1].size += len;
			continue;
		}
		if (n == BOOT_MEMMAP_MAX * 2) {
			lost++;
			continue;
		}
		raw[n].base = d->PhysicalStart;
		raw[n].size = len;
		raw[n].type = type;
		raw[n].reserved = 0;
		n++;
	}
	if (memmap_normalize(raw, &n, BOOT_MEMMAP_MAX) != 0)
		lost++;
	CopyMem(bi->memmap, raw, n * sizeof(raw[0]));
	bi->memmap_count = n;
	return lost;
}

/*
 * Take the final memory map into bi and leave boot services. A stale map key
 * (EFI_INVALID_PARAMETER) means the map changed under us: take it again, a
 * bounded number of times. Nothing is printed between GetMemoryMap and
 * ExitBootServices, since output can allocate and so change the map. *lost
 * receives efi_translate_map's count.
 */
static EFI_STATUS efi_exit_boot_services(EFI_HANDLE image, struct boot_info *bi, UINT32 *lost)
{
	EFI_MEMORY_DESCRIPTOR *map = NULL;
	UINTN cap = 0;
	for (int t = 0; t < EFI_EXIT_TRIES; t++) {
		UINTN size = cap, key = 0, dsize = 0;
		UINT32 dver = 0;
		EFI_STATUS s = BS->GetMemoryMap(&size, map, &key, &dsize, &dver);
		if (s == EFI_BUFFER_TOO_SMALL) {
			/* Room to spare: this allocation itself may split a descriptor. */
			if (map)
				BS->FreePool(map);
			map = NULL;
			cap = size + 16 * (dsize ? dsize : sizeof(*map));
			s = BS->AllocatePool(EfiLoaderData, cap, (void **)&map);
			if (EFI_ERROR(s))
				return efi_console_gone ? efi_late_error("no memory for the memory map", s)
							: efi_error(s, L"no memory for the memory map");
			continue;
		}
		if (EFI_ERROR(s))
			return efi_console_gone ? efi_late_error("GetMemoryMap failed", s)
						: efi_error(s, L"GetMemoryMap failed");
		if (dsize < sizeof(EFI_MEMORY_DESCRIPTOR))
			return efi_console_gone ? efi_late_error("memory map descriptors too small", EFI_UNSUPPORTED)
						: efi_error(EFI_UNSUPPORTED, L"memory map descriptors of %ld bytes",
							    (UINT64)dsize);
		*lost = efi_translate_map(bi, (const UINT8 *)map, size, dsize);
		s = BS->ExitBootServices(image, key);
		if (s == EFI_SUCCESS)
			return s;
		efi_console_gone = 1;
		if (s != EFI_INVALID_PARAMETER)
			return efi_late_error("ExitBootServices failed", s);
	}
	return efi_console_gone ? efi_late_error("the memory map kept changing; ExitBootServices gave up",
						  EFI_ABORTED)
				: efi_error(EFI_ABORTED, L"GetMemoryMap kept asking for a bigger buffer");
}

typedef void (*efi_kernel_entry)(struct boot_info *bi); /* System V ABI: bi in %rdi */

/*
 * Everything from the loaded image to the kernel. Returns only on a failure
 * before the kernel starts, with the message already printed.
 */
static EFI_STATUS efi_boot(EFI_HANDLE image)
{
	EFI_LOADED_IMAGE *li;
	EFI_FILE_HANDLE root, kfile;
	static struct efi_elf_image img;
	char cmdline[BOOT_CMDLINE_MAX] = "";
	int found;

	EFI_STATUS s = BS->HandleProtocol(image, &gEfiLoadedImageProtocolGuid, (void **)&li);
	if (EFI_ERROR(s))
		return efi_error(s, L"no LoadedImage protocol on our own image");
	s = efi_open_kernel(li, &root, &kfile);
	if (EFI_ERROR(s))
		return s;

	s = efi_cmdline_from_options(li, cmdline, &found);
	if (!EFI_ERROR(s) && found)
		Print(L"blimp-efi: command line from LoadOptions: \"%a\"\n", cmdline);
	if (!EFI_ERROR(s) && !found) {
		s = efi_cmdline_from_file(root, cmdline, &found);
		if (!EFI_ERROR(s))
			Print(found ? L"blimp-efi: command line from %s: \"%a\"\n"
				    : L"blimp-efi: no %s: empty command line\n", EFI_CMDLINE_PATH, cmdline);
	}
	if (!EFI_ERROR(s))
		s = efi_load_kernel(kfile, li, &img);
	kfile->Close(kfile);
	root->Close(root);
	if (EFI_ERROR(s))
		return s;
	const struct efi_elf_load *last = &img.load[img.nload - 1];
	Print(L"blimp-efi: kernel at 0x%lx-0x%lx (%d segments), entry 0x%lx\n", img.load[0].paddr,
	      last->paddr + last->memsz, img.nload, img.entry);

	/* Below 4 GiB so a kernel still on 32-bit assumptions could reach it too. */
	EFI_PHYSICAL_ADDRESS at = 0xffffffff;
	UINTN pages = (sizeof(struct boot_info) + 4095) / 4096;
	s = BS->AllocatePages(AllocateMaxAddress, EfiLoaderData, pages, &at);
	if (EFI_ERROR(s))
		return efi_error(s, L"no %ld pages below 4 GiB for boot_info", (UINT64)pages);
	struct boot_info *bi = (struct boot_info *)(UINTN)at;
	ZeroMem(bi, sizeof(*bi));
	bi->magic = BOOT_INFO_MAGIC;
	bi->path = BOOT_PATH_UEFI;
	bi->rsdp = efi_find_rsdp();
	CopyMem(bi->cmdline, cmdline, sizeof(bi->cmdline));

	Print(L"blimp-efi: boot_info at 0x%lx; leaving boot services\n", (UINT64)at);
	UINT32 lost = 0;
	s = efi_exit_boot_services(image, bi, &lost);
	if (EFI_ERROR(s))
		return s;

	/* The firmware is gone; COM1 is ours. */
	efi_serial_puts("blimp-efi: boot services exited, ");
	efi_serial_dec(bi->memmap_count);
	efi_serial_puts(" memory ranges; jumping to the kernel\r\n");
	if (lost)
		efi_serial_puts("blimp-efi: warning: the memory map had more ranges than boot_info "
				"holds; the highest are left out\r\n");
	__asm__ volatile("cli" : : : "memory");
	((efi_kernel_entry)(UINTN)img.entry)(bi);

	/* Boot services are gone: nothing to return to. */
	efi_late_error("the kernel returned to the loader", EFI_ABORTED);
	efi_fail_why = "the kernel returned";
	efi_boot_failed_event();
	efi_outb(QEMU_EXIT_PORT, QEMU_EXIT_BOOT_FAILED);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/*
 * The application's entry, called by gnu-efi's crt0 (System V ABI). Returns
 * only when the kernel could not be started, after exiting QEMU if it can.
 */
EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	InitializeLib(image, systab);
	Print(L"blimp-efi: blimp's UEFI loader, on %s firmware 0x%x, UEFI %d.%02d\n", ST->FirmwareVendor,
	      ST->FirmwareRevision, ST->Hdr.Revision >> 16, ST->Hdr.Revision & 0xffff);
	EFI_STATUS s = efi_boot(image);
	efi_boot_failed_event();
	efi_outb(QEMU_EXIT_PORT, QEMU_EXIT_BOOT_FAILED);
	if (!efi_console_gone)
		Print(L"blimp-efi: no isa-debug-exit device to stop QEMU: returning to the firmware\n");
	return s;
}
