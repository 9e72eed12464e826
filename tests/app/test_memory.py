"""server/memory.py: the memory the server hands back."""



def test_the_memory_thread_collects_the_cyclic_garbage_that_page_runs_leave():
    import gc
    import time
    import weakref

    from server.memory import give_memory_back

    class Namespace(dict):
        pass

    was_enabled = gc.isenabled()
    gc.disable()  # from here on only the thread collects
    cycle = Namespace(images=bytearray(1 << 20))
    cycle["self"] = cycle  # a script namespace refers to itself through its functions' globals
    gone = weakref.ref(cycle)
    del cycle
    assert gone() is not None
    stop = give_memory_back(every_s=0.02, collect_every=2)
    try:
        deadline = time.time() + 5
        while gone() is not None and time.time() < deadline:
            time.sleep(0.02)
        assert gone() is None
    finally:
        stop.set()
        if was_enabled:
            gc.enable()
