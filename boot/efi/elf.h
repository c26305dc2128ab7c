/*
 * elf: checking the kernel ELF before a byte of it is placed in memory.
 *
 * The UEFI loader reads blimp.elf's file header and program headers and hands
 * them here. What comes back is either the list of PT_LOAD segments to place,
 * sorted by physical address and known to be sane, or one sentence saying what
 * is wrong with the file. Nothing here calls the firmware or reads outside the
 * buffers it is given, and it needs only <stdint.h>: the same file can be
 * built for the host and fed malformed files.
 *
 * What "sane" means for blimp's kernel: ELF64, little-endian, x86-64,
 * ET_EXEC; program headers and every segment's file bytes inside the file;
 * p_filesz <= p_memsz; no address arithmetic that wraps; p_vaddr == p_paddr
 * (the loader jumps to e_entry with UEFI's identity mapping still on);
 * segments that do not overlap in memory; e_entry inside the file bytes of an
 * executable segment.
 */
#ifndef BLIMP_EFI_ELF_H
#define BLIMP_EFI_ELF_H

#include <stdint.h>

#define EFI_ELF_EHDR_SIZE 64 /* sizeof(Elf64_Ehdr) */
#define EFI_ELF_PHDR_SIZE 56 /* sizeof(Elf64_Phdr) */
#define EFI_ELF_MAX_LOAD 16  /* PT_LOAD segments accepted; blimp has 2 */
#define EFI_ELF_PAGE 4096ULL

#define EFI_ELF_PF_X 1 /* p_flags: executable */

/* One PT_LOAD segment, as the file describes it. */
struct efi_elf_load {
	uint64_t offset; /* p_offset: where its bytes start in the file */
	uint64_t paddr;  /* p_paddr == p_vaddr: where they go */
	uint64_t filesz; /* bytes copied from the file */
	uint64_t memsz;  /* bytes in memory; the rest after filesz is zeroed */
	uint32_t flags;  /* p_flags */
	uint32_t index;  /* its program header's index, for messages */
};

/* What the checks learn about the file. */
struct efi_elf_image {
	uint64_t file_size; /* bytes in the whole file */
	uint64_t entry;     /* e_entry */
	uint64_t phoff;     /* e_phoff: program headers start here ... */
	uint32_t phnum;     /* ... and there are this many */
	uint32_t nload;     /* PT_LOAD segments with memsz > 0, in load[] */
	struct efi_elf_load load[EFI_ELF_MAX_LOAD]; /* sorted by paddr */
};

/*
 * Check the ELF file header: `ehdr` holds the first EFI_ELF_EHDR_SIZE bytes
 * of a file of `file_size` bytes (fewer if the file is shorter). On success
 * returns NULL and sets img->file_size, entry, phoff and phnum, so the caller
 * knows which bytes to read for efi_elf_check_segments. On failure returns a
 * sentence saying what is wrong.
 */
const char *efi_elf_check_header(const uint8_t *ehdr, uint64_t file_size, struct efi_elf_image *img);

/*
 * Check the program headers: `phdrs` holds img->phnum entries read from
 * img->phoff (img as efi_elf_check_header left it). On success returns NULL
 * and fills img->load[] and img->nload. On failure returns a sentence and
 * sets *bad to the index of the program header at fault, or -1 when the fault
 * is the file as a whole (no segment, entry point outside the code).
 */
const char *efi_elf_check_segments(const uint8_t *phdrs, struct efi_elf_image *img, int *bad);

/* First and one-past-last page-aligned address covering load segment `l`. */
uint64_t efi_elf_page_start(const struct efi_elf_load *l);
uint64_t efi_elf_page_end(const struct efi_elf_load *l);

#endif
