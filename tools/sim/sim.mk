# tools/sim/: seeded exercises built from the kernel's own sources (docs/exercises.md).
#   make sims   build/sim/buddy (kernel/pfa.c) and build/sim/paging (kernel/replace.c)
# Host gcc, BLIMP_HOST as the unit tests compile these files, no sanitizers:
# the same allocator and policies the kernel runs, not copies.
SIM_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -I. -DBLIMP_HOST=1
SIM_SRCS_buddy := tools/sim/buddy_sim.c kernel/pfa.c kernel/pfa_check.c
SIM_SRCS_paging := tools/sim/paging_sim.c kernel/replace.c
SIMS := buddy paging

define sim_rule
SIM_OBJS_$(1) := $$(patsubst %.c,$(BUILD)/sim/obj/%.o,$$(SIM_SRCS_$(1)))
$(BUILD)/sim/$(1): $$(SIM_OBJS_$(1))
	$$(Q)$$(HOST_CC) $$(SIM_CFLAGS) -o $$@ $$^
-include $$(SIM_OBJS_$(1):.o=.d)
endef
$(foreach s,$(SIMS),$(eval $(call sim_rule,$(s))))

$(BUILD)/sim/obj/%.o: %.c | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)$(HOST_CC) $(SIM_CFLAGS) -MMD -MP -c $< -o $@

sims: $(patsubst %,$(BUILD)/sim/%,$(SIMS))

.PHONY: sims
