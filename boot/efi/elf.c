/*
 * elf: checks on the kernel ELF's headers (see elf.h).
 *
 * Fields are read byte by byte in little-endian order, so a header at any
 * alignment, on any host, reads the same. Every sum of a file-controlled
 * offset and size is checked against wrapping before it is compared.
 */
#include "elf.h"
#include "kernel/le.h"

#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define EV_CURRENT 1
#define ET_EXEC 2
#define EM_X86_64 62
#define PT_LOAD 1
#define PT_INTERP 3
#define PN_XNUM 0xffff

/* a + b <= limit, without the sum wrapping. */
static int efi_elf_fits(uint64_t a, uint64_t b, uint64_t limit)
{
	return a <= limit && b <= limit - a;
}

const char *efi_elf_check_header(const uint8_t *ehdr, uint64_t file_size, struct efi_elf_image *img)
{
	if (file_size < EFI_ELF_EHDR_SIZE)
		return "the file is shorter than an ELF64 header (64 bytes)";
	if (ehdr[0] != 0x7f || ehdr[1] != 'E' || ehdr[2] != 'L' || ehdr[3] != 'F')
		return "no ELF magic (7f 45 4c 46) at the start: not an ELF file";
	if (ehdr[4] != ELFCLASS64)
		return "not ELFCLASS64: a 32-bit ELF? blimp's kernel is a 64-bit ELF";
	if (ehdr[5] != ELFDATA2LSB)
		return "not little-endian (EI_DATA is not ELFDATA2LSB)";
	if (ehdr[6] != EV_CURRENT || le_read(ehdr + 20, 4) != EV_CURRENT)
		return "unknown ELF version (EI_VERSION or e_version is not 1)";
	if (le_read(ehdr + 16, 2) != ET_EXEC)
		return "not an executable (e_type is not ET_EXEC): an object file, or a PIE/shared object?";
	if (le_read(ehdr + 18, 2) != EM_X86_64)
		return "not an x86-64 file (e_machine is not EM_X86_64)";
	if (le_read(ehdr + 52, 2) < EFI_ELF_EHDR_SIZE)
		return "e_ehsize is smaller than an ELF64 header";

	uint64_t phoff = le_read(ehdr + 32, 8);
	uint64_t phentsize = le_read(ehdr + 54, 2);
	uint64_t phnum = le_read(ehdr + 56, 2);
	if (phnum == 0)
		return "no program headers (e_phnum is 0): nothing says what to load";
	if (phnum == PN_XNUM)
		return "e_phnum is PN_XNUM (extended numbering), which this loader does not read";
	if (phentsize != EFI_ELF_PHDR_SIZE)
		return "e_phentsize is not 56, the size of an Elf64_Phdr";
	if (!efi_elf_fits(phoff, phnum * EFI_ELF_PHDR_SIZE, file_size))
		return "the program header table (e_phoff, e_phnum) lies outside the file";

	img->file_size = file_size;
	img->entry = le_read(ehdr + 24, 8);
	img->phoff = phoff;
	img->phnum = (uint32_t)phnum;
	img->nload = 0;
	return 0;
}

/* Check one PT_LOAD header; NULL if it is fine. */
static const char *efi_elf_check_load(const struct efi_elf_load *l, uint64_t vaddr, uint64_t file_size)
{
	if (l->filesz > l->memsz)
		return "p_filesz is larger than p_memsz";
	if (!efi_elf_fits(l->offset, l->filesz, file_size))
		return "the segment's file bytes (p_offset + p_filesz) lie outside the file";
	/* The page-rounded end must not wrap either: the loader allocates it. */
	if (!efi_elf_fits(l->paddr, l->memsz, UINT64_MAX - (EFI_ELF_PAGE - 1)))
		return "p_paddr + p_memsz wraps around the address space";
	if (vaddr != l->paddr)
		return "p_vaddr differs from p_paddr: the kernel must be linked identity-mapped";
	return 0;
}

const char *efi_elf_check_segments(const uint8_t *phdrs, struct efi_elf_image *img, int *bad)
{
	img->nload = 0;
	for (uint32_t i = 0; i < img->phnum; i++) {
		const uint8_t *ph = phdrs + (uint64_t)i * EFI_ELF_PHDR_SIZE;
		uint32_t type = (uint32_t)le_read(ph, 4);
		*bad = (int)i;
		if (type == PT_INTERP)
			return "PT_INTERP asks for a dynamic linker: the kernel must be linked static";
		if (type != PT_LOAD)
			continue;
		struct efi_elf_load l = {
			.offset = le_read(ph + 8, 8),
			.paddr = le_read(ph + 24, 8),
			.filesz = le_read(ph + 32, 8),
			.memsz = le_read(ph + 40, 8),
			.flags = (uint32_t)le_read(ph + 4, 4),
			.index = i,
		};
		const char *why = efi_elf_check_load(&l, le_read(ph + 16, 8), img->file_size);
		if (why)
			return why;
		if (l.memsz == 0)
			continue; /* occupies no memory: nothing to place */
		if (img->nload == EFI_ELF_MAX_LOAD)
			return "more than 16 PT_LOAD segments";
		/* Insertion by paddr: tiny n, and the overlap check below needs order. */
		uint32_t j = img->nload++;
		for (; j > 0 && img->load[j - 1].paddr > l.paddr; j--)
			img->load[j] = img->load[j - 1];
		img->load[j] = l;
	}

	*bad = -1;
	if (img->nload == 0)
		return "no PT_LOAD segment with bytes in memory: nothing to load";
	for (uint32_t i = 1; i < img->nload; i++) {
		const struct efi_elf_load *a = &img->load[i - 1], *b = &img->load[i];
		if (a->paddr + a->memsz > b->paddr) {
			*bad = (int)b->index;
			return "two PT_LOAD segments overlap in memory";
		}
	}
	for (uint32_t i = 0; i < img->nload; i++) {
		const struct efi_elf_load *l = &img->load[i];
		if ((l->flags & EFI_ELF_PF_X) && img->entry >= l->paddr && img->entry - l->paddr < l->filesz)
			return 0;
	}
	return "the entry point (e_entry) is not inside the file bytes of an executable PT_LOAD segment";
}

uint64_t efi_elf_page_start(const struct efi_elf_load *l)
{
	return l->paddr & ~(EFI_ELF_PAGE - 1);
}

uint64_t efi_elf_page_end(const struct efi_elf_load *l)
{
	return (l->paddr + l->memsz + EFI_ELF_PAGE - 1) & ~(EFI_ELF_PAGE - 1);
}
