/*
 * power: ACPI power button and shutdown (see power.h, docs/power.md).
 *
 * Every port used here comes from the FADT, checked by acpi_fadt_parse
 * (never hard-coded: QEMU's PM base is 0x600 on both machines today, but
 * that is the firmware's choice). Register rules are ACPI 6.5, 4.8.3:
 * PM1 status bits are write-1-to-clear, PM1_EVT_BLK is a status half then
 * an enable half, PM1_CNT holds SCI_EN, SLP_TYP and SLP_EN.
 */
#include <errno.h>
#include <stdio.h>
#include "power.h"
#include "acpi.h"
#include "clock.h"
#include "console.h"
#include "event.h"
#include "shell.h"
#include "work.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/qemu_exit.h"

#define ACPI_ENABLE_WAIT_MS 3000  /* the spec sets no bound; Linux waits 3 s too */
#define S5_WAIT_MS 3000           /* QEMU acts on SLP_EN in its main loop, not at the write */
#define POLL_PERIOD_NS (100 * 1000 * 1000ULL)
#define FLUSH_STALL_MS 2000

/* How the button is watched: not at all, through the SCI, or by polling. */
enum button_mode { BUTTON_OFF, BUTTON_SCI, BUTTON_POLL };

static struct {
	enum button_mode mode;
	const char *off_why;     /* why BUTTON_OFF */
	uint32_t sci_gsi;
	bool sci_level, sci_active_low;
	int sci_vector;
	uint64_t scis;           /* SCIs taken (or polls that found a status bit) */
	uint64_t presses;
	bool switched_acpi_mode; /* blimp set SCI_EN through SMI_CMD (else the firmware had) */
	struct work press_work;
} pw;

static const struct acpi_fadt *fadt(void)
{
	return &acpi.fadt;
}

/* ---------------------------------------------------------------- PM1 */

static uint16_t pm1_cnt_read(void)
{
	uint16_t v = inw(fadt()->pm1a_cnt);
	if (fadt()->pm1b_cnt)
		v |= inw(fadt()->pm1b_cnt);
	return v;
}

/* The enable half of a PM1 event block. */
static uint16_t pm1_en_port(uint16_t evt)
{
	return (uint16_t)(evt + fadt()->pm1_evt_len / 2);
}

/*
 * Read both PM1 status registers, clear every bit that was set (write 1 to
 * clear: a status left set keeps a level-triggered SCI asserted) and return
 * their union. Safe in an interrupt handler.
 */
static uint16_t pm1_status_take(void)
{
	uint16_t a = inw(fadt()->pm1a_evt), b = 0;
	if (a)
		outw(fadt()->pm1a_evt, a);
	if (fadt()->pm1b_evt && (b = inw(fadt()->pm1b_evt)) != 0)
		outw(fadt()->pm1b_evt, b);
	return a | b;
}

/* Only PWRBTN_EN on: no SCI source stays enabled that blimp does not handle. */
static void pm1_enable_button(void)
{
	outw(pm1_en_port(fadt()->pm1a_evt), ACPI_PM1_PWRBTN_EN);
	if (fadt()->pm1b_evt)
		outw(pm1_en_port(fadt()->pm1b_evt), ACPI_PM1_PWRBTN_EN);
}

/* Switch off every general-purpose event, then clear their status. */
static void gpe_disable_all(void)
{
	const struct { uint16_t port; uint8_t len; } blk[2] = {
		{ fadt()->gpe0_blk, fadt()->gpe0_len }, { fadt()->gpe1_blk, fadt()->gpe1_len },
	};
	for (int i = 0; i < 2; i++) {
		if (!blk[i].port)
			continue;
		unsigned half = blk[i].len / 2u;
		for (unsigned k = 0; k < half; k++)
			outb((uint16_t)(blk[i].port + half + k), 0);
		for (unsigned k = 0; k < half; k++)
			outb((uint16_t)(blk[i].port + k), 0xff);
	}
}

/* ---------------------------------------------------------------- ACPI mode */

/* SCI_EN set, by the firmware or by writing ACPI_ENABLE to SMI_CMD here.
 * Returns 0, -ENODEV (no way to switch) or -ETIMEDOUT. */
static int acpi_mode_enable(void)
{
	if (pm1_cnt_read() & ACPI_PM1_SCI_EN)
		return 0;
	if (fadt()->smi_cmd == 0 || fadt()->acpi_enable == 0) {
		printf("power: SCI_EN is clear and the FADT gives no SMI_CMD/ACPI_ENABLE to set it\n");
		return -ENODEV;
	}
	outb(fadt()->smi_cmd, fadt()->acpi_enable);
	pw.switched_acpi_mode = true;
	uint64_t deadline = clock_ms() + ACPI_ENABLE_WAIT_MS;
	while (!(pm1_cnt_read() & ACPI_PM1_SCI_EN)) {
		if (clock_ms() >= deadline) {
			printf("power: wrote ACPI_ENABLE %#x to SMI_CMD %#x, SCI_EN still clear after %u ms\n",
			       fadt()->acpi_enable, fadt()->smi_cmd, ACPI_ENABLE_WAIT_MS);
			return -ETIMEDOUT;
		}
		__asm__ volatile("pause");
	}
	return 0;
}

/* ---------------------------------------------------------------- the button */

static void press_work_fn(struct work *w)
{
	(void)w;
	printf("power button pressed: shutting down\n");
	event_emit("power_button", "\"via\":\"%s\"", pw.mode == BUTTON_SCI ? "sci" : "poll");
	power_off("power_button");
}

/* The SCI, or a poll: take the status, act on a press. */
static void pm1_check(void)
{
	uint16_t sts = pm1_status_take();
	if (!sts)
		return;
	pw.scis++;
	if (sts & ACPI_PM1_PWRBTN_STS) {
		pw.presses++;
		work_queue(&pw.press_work);
	}
}

static void sci_handler(void *ctx)
{
	(void)ctx;
	pm1_check();
}

/*
 * The SCI's GSI, trigger and polarity: FADT SCI_INT names an ISA IRQ; a MADT
 * interrupt source override for it gives the GSI and the flags that
 * acpi_sci_mode reads (the SCI's default: level, active-low).
 */
static void sci_line(void)
{
	uint16_t flags = 0;
	pw.sci_gsi = fadt()->sci_int;
	for (int i = 0; i < acpi.n_overrides; i++)
		if (acpi.overrides[i].isa_irq == fadt()->sci_int) {
			pw.sci_gsi = acpi.overrides[i].gsi;
			flags = acpi.overrides[i].flags;
			break;
		}
	acpi_sci_mode(flags, &pw.sci_level, &pw.sci_active_low);
}

/* Route the SCI to a vector of its own. Returns 0 or a negative errno value. */
static int sci_wire(void)
{
	if (!ioapic_present())
		return -ENODEV;
	sci_line();
	int vec = irq_alloc_vector();
	if (vec < 0)
		return vec;
	int rc = irq_set_handler(vec, sci_handler, NULL);
	if (rc < 0)
		return rc;
	rc = ioapic_route_gsi(pw.sci_gsi, vec, pw.sci_level, pw.sci_active_low);
	if (rc < 0)
		return rc;
	pw.sci_vector = vec;
	return 0;
}

int power_init(bool poll)
{
	pw.mode = BUTTON_OFF;
	pw.press_work.fn = press_work_fn;
	if (!acpi.have_fadt) {
		pw.off_why = "no usable FADT";
		printf("power: %s; no power button\n", pw.off_why);
		return -ENODEV;
	}
	if (fadt()->flags & ACPI_FADT_PWR_BUTTON) {
		pw.off_why = "the power button is a control-method device";
		printf("power: %s (FADT flag PWR_BUTTON); not supported, no power button\n", pw.off_why);
		return -EOPNOTSUPP;
	}
	int rc = acpi_mode_enable();
	if (rc < 0) {
		pw.off_why = "ACPI mode could not be enabled";
		printf("power: %s (%d); no power button\n", pw.off_why, rc);
		return rc;
	}
	gpe_disable_all();
	/* Quiet first (every enable off but the button's, old status cleared),
	 * then route, so the line is never asserted for a cause not handled. */
	pm1_enable_button();
	pm1_status_take();
	rc = poll ? -ENODEV : sci_wire();
	if (rc < 0) {
		if (!poll)
			printf("power: SCI not routed (%d); polling PM1 status\n", rc);
		work_add_poll(pm1_check, POLL_PERIOD_NS);
		pw.mode = BUTTON_POLL;
	} else {
		pw.mode = BUTTON_SCI;
	}
	printf("power: ACPI power button armed (%s", pw.mode == BUTTON_SCI ? "SCI" : "polled");
	if (pw.mode == BUTTON_SCI)
		printf(" on GSI %u, %s, active-%s", pw.sci_gsi, pw.sci_level ? "level" : "edge",
		       pw.sci_active_low ? "low" : "high");
	printf("), PM1a_EVT %#x, PM1a_CNT %#x, ACPI mode %s\n", fadt()->pm1a_evt, fadt()->pm1a_cnt,
	       pw.switched_acpi_mode ? "switched on through SMI_CMD" : "already on");
	return 0;
}

/* ---------------------------------------------------------------- off */

/*
 * Enter S5: SLP_TYP from \_S5 into each PM1 control register, then SLP_EN
 * (ACPI 6.5, 7.4.2 and 16.1.7: a then b, type first). Returns only if the
 * machine is still running S5_WAIT_MS later, with a negative errno value.
 */
static int acpi_s5(void)
{
	if (!acpi.have_fadt || !acpi.have_s5) {
		printf("power: no ACPI S5 (%s)\n", !acpi.have_fadt ? "no usable FADT" : "no \\_S5 in the DSDT");
		return -ENODEV;
	}
	printf("power: no isa-debug-exit device; entering ACPI S5 (SLP_TYP %u) through PM1a_CNT %#x\n",
	       acpi.s5_slp_typa, fadt()->pm1a_cnt);
	console_flush(FLUSH_STALL_MS);
	irq_disable();
	const uint16_t keep = (uint16_t)~(ACPI_PM1_SLP_TYP_MASK | ACPI_PM1_SLP_EN);
	uint16_t a = (uint16_t)((inw(fadt()->pm1a_cnt) & keep) | acpi.s5_slp_typa << ACPI_PM1_SLP_TYP_SHIFT);
	uint16_t b = 0;
	if (fadt()->pm1b_cnt)
		b = (uint16_t)((inw(fadt()->pm1b_cnt) & keep) | acpi.s5_slp_typb << ACPI_PM1_SLP_TYP_SHIFT);
	outw(fadt()->pm1a_cnt, a);
	if (fadt()->pm1b_cnt)
		outw(fadt()->pm1b_cnt, b);
	outw(fadt()->pm1a_cnt, a | ACPI_PM1_SLP_EN);
	if (fadt()->pm1b_cnt)
		outw(fadt()->pm1b_cnt, b | ACPI_PM1_SLP_EN);
	uint64_t deadline = clock_ms() + S5_WAIT_MS;
	while (clock_ms() < deadline)
		__asm__ volatile("pause");
	printf("power: still running %u ms after SLP_EN\n", S5_WAIT_MS);
	return -ETIMEDOUT;
}

void power_off(const char *why)
{
	printf("powering off\n");
	event_emit("poweroff", "\"why\":\"%s\"", why);
	qemu_exit_try(QEMU_EXIT_SUCCESS);
	acpi_s5();
	printf("power: nothing switched the machine off; halting\n");
	console_flush(FLUSH_STALL_MS);
	for (;;) {
		irq_disable();
		__asm__ volatile("hlt");
	}
}

/* ---------------------------------------------------------------- shell */

static const char *mode_name(void)
{
	return pw.mode == BUTTON_SCI ? "sci" : pw.mode == BUTTON_POLL ? "poll" : "off";
}

static int cmd_power(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	const struct acpi_fadt *f = fadt();
	if (acpi.have_fadt) {
		printf("FADT rev %u: SCI_INT %u, SMI_CMD %#x (ACPI_ENABLE %#x), %s fields\n",
		       f->revision, f->sci_int, f->smi_cmd, f->acpi_enable, f->pm1_from_x ? "X_" : "32-bit");
		printf("  PM1a_EVT %#x PM1b_EVT %#x (len %u), PM1a_CNT %#x PM1b_CNT %#x (len %u)\n",
		       f->pm1a_evt, f->pm1b_evt, f->pm1_evt_len, f->pm1a_cnt, f->pm1b_cnt, f->pm1_cnt_len);
		printf("  GPE0 %#x (len %u), GPE1 %#x (len %u), DSDT %#lx\n", f->gpe0_blk, f->gpe0_len,
		       f->gpe1_blk, f->gpe1_len, (unsigned long)f->dsdt);
		printf("  PM1_CNT now %#x (SCI_EN %s; %s)\n", pm1_cnt_read(),
		       pm1_cnt_read() & ACPI_PM1_SCI_EN ? "on" : "off",
		       pw.switched_acpi_mode ? "blimp switched it on" : "as the firmware left it");
	} else {
		printf("no usable FADT\n");
	}
	if (acpi.have_s5)
		printf("\\_S5: SLP_TYPa %u, SLP_TYPb %u\n", acpi.s5_slp_typa, acpi.s5_slp_typb);
	printf("power button: %s%s%s; %lu SCIs, %lu presses\n", mode_name(),
	       pw.mode == BUTTON_OFF && pw.off_why ? ", " : "", pw.mode == BUTTON_OFF && pw.off_why ? pw.off_why : "",
	       (unsigned long)pw.scis, (unsigned long)pw.presses);
	event_emit("power", "\"button\":\"%s\",\"fadt\":%s,\"sci_int\":%u,\"sci_gsi\":%d,"
		   "\"pm1a_evt\":%u,\"pm1a_cnt\":%u,\"pm1b_evt\":%u,\"pm1b_cnt\":%u,\"smi_cmd\":%u,"
		   "\"x_fields\":%s,\"s5\":%s,\"slp_typa\":%d,\"slp_typb\":%d,\"scis\":%lu,\"presses\":%lu,"
		   "\"acpi_mode\":\"%s\"",
		   mode_name(), acpi.have_fadt ? "true" : "false", f->sci_int,
		   pw.mode == BUTTON_SCI ? (int)pw.sci_gsi : -1, f->pm1a_evt, f->pm1a_cnt, f->pm1b_evt,
		   f->pm1b_cnt, f->smi_cmd, f->pm1_from_x ? "true" : "false", acpi.have_s5 ? "true" : "false",
		   acpi.have_s5 ? acpi.s5_slp_typa : -1, acpi.have_s5 ? acpi.s5_slp_typb : -1,
		   (unsigned long)pw.scis, (unsigned long)pw.presses,
		   pw.switched_acpi_mode ? "switched" : "firmware");
	return 0;
}
SHELL_COMMAND(power, "", "ACPI power management: FADT registers, \\_S5, the power button", cmd_power);

static int cmd_poweroff(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	power_off("command");
}
SHELL_COMMAND(poweroff, "",
	      "switch off: QEMU exits 33 with isa-debug-exit, else through ACPI S5 (status 0)",
	      cmd_poweroff);
