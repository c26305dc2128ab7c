"""The working-set estimate (issue 15, first slice): the aging hand's rounds
tell how many pages each workload used in the last tau and how many it has
not used for a while.

A workload whose accesses all go to its first 200 MiB (hotpct=100) after it
wrote all 600 MiB once: the truth is known — the working set is the hot
set, and the other 400 MiB become idle once the window has passed.
"""
MIB = 1 << 20
PAGE = 4096


def test_the_estimate_finds_a_known_hot_set(boot):
    vm = boot(mem="1G", append="vm.ws_ms=3000 vm.idle_ms=4000")
    vm.wait_event("ready", timeout=60)
    vm.shell("run w size=600M pattern=hotcold hot=200M hotpct=100 write=30")
    hot, cold = 200 * MIB // PAGE, 400 * MIB // PAGE

    def events():
        return [e for e in vm.events_named("workload") if e["name"] == "w"]

    filled = vm.wait_for(lambda: next((e for e in events() if e["accesses"] > 0), None), 180,
                         "the fill to end")
    # Right after the fill every page was just used: all of it is the set.
    # tau (3 s) and two rounds later only the hot set is.
    late = vm.wait_for(lambda: next((e for e in events() if e["t_ms"] >= filled["t_ms"] + 7000), None),
                       120, "seven seconds of hot accesses")
    assert abs(late["ws"] - hot) <= 0.1 * hot, f"working set {late['ws']} pages, hot set {hot}: {late}"
    assert abs(late["idle"] - cold) <= 0.1 * cold, f"idle {late['idle']} pages, cold set {cold}: {late}"
    ws = vm.shell_event("ws")
    assert ws["tau_ms"] == 3000 and ws["idle_ms"] == 4000 and ws["rounds"] > 5, ws
    region = ws["regions"][0]
    assert region["region"] == late["region"] and abs(region["ws"] - hot) <= 0.1 * hot, ws
    # The estimate's cost: one visit per resident page per round.
    assert ws["round_pages"] >= 0.9 * (hot + cold), ws
    # Earlier, right after the fill, the set held cold pages too: the fill
    # had just written them. All of them when the fill took less than tau;
    # on a host loaded by other QEMUs it takes longer (600 MiB of first
    # touches) and its first pages have left the window (seen with five
    # other QEMUs running: 125507 and 96204 of 153600 pages). What must hold
    # is that the set was well beyond the hot set then, and is not later.
    early = [e for e in vm.events_named("ws") if e["t_ms"] <= filled["t_ms"] + 1500 and e["resident"]]
    assert early and early[-1]["ws"] >= hot + cold // 4, early[-1:]
    vm.shell("stop w")
