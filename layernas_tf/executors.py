"""Executors: move trial specs to where they run and bring the outcomes back, in completion order.

They know nothing of search. The interface is small: `slots` (how many trials may run at once),
`submit(spec)`, `collect(timeout)` (the outcomes finished so far, at least one unless the timeout
passes) and `close()`.

- `InProcessExecutor`: runs each trial in this process (the caller's live datasets work here).
- `LocalExecutor`: N spawned worker processes (TensorFlow is not fork-safe). With GPUs, worker i
  sees GPU i mod G; on CPU each worker gets the cores divided among the default number of workers. A worker that dies is replaced
  and its trial comes back as a `worker_lost` outcome.
- `RayExecutor`: each trial is a Ray task sized by `cpus_per_trial` / `gpus_per_trial`, on a local
  Ray instance or a cluster (`address`).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
from typing import Dict, List, Optional

from layernas_tf.runner import TrialOutcome, TrialSpec, lost_outcome

EXECUTORS = ("in_process", "local", "ray")


class Executor:
    """Base: `slots` trials at a time."""

    slots = 1

    def submit(self, spec: TrialSpec) -> None:
        raise NotImplementedError

    def collect(self, timeout: Optional[float] = None) -> List[TrialOutcome]:
        raise NotImplementedError

    @property
    def running(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InProcessExecutor(Executor):
    """Runs one trial at a time in this process, when `collect` is called."""

    slots = 1

    def __init__(self):
        self._queue: List[TrialSpec] = []

    def submit(self, spec: TrialSpec) -> None:
        self._queue.append(spec)

    @property
    def running(self) -> int:
        return len(self._queue)

    def collect(self, timeout: Optional[float] = None) -> List[TrialOutcome]:
        from layernas_tf.runner import run_trial

        return [run_trial(self._queue.pop(0))] if self._queue else []


def visible_gpus() -> int:
    """GPUs this machine has, counted without loading TensorFlow (nvidia-smi, else /proc)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return len([d for d in listed.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len([d for d in os.listdir("/proc/driver/nvidia/gpus")])
    except OSError:
        return 0


def default_workers() -> int:
    """One worker per GPU; on CPU, two (measured best on a 2-core machine: tracing is single-threaded
    Python, so a second worker uses the core it leaves idle), or one per two cores on larger machines."""
    gpus = visible_gpus()
    if gpus:
        return gpus
    return max(1, min(2, os.cpu_count() or 1)) if (os.cpu_count() or 1) <= 4 else (os.cpu_count() or 1) // 2


def default_threads_per_trial() -> int:
    """TensorFlow threads per trial on CPU: the cores divided among the default number of workers."""
    return max(1, (os.cpu_count() or 1) // default_workers())


def _exit_with_parent(parent: int) -> None:
    """Exit this worker when the driver is gone (killed with SIGKILL, it cannot stop its workers)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _worker_main(conn, env: Dict[str, str], threads: Optional[int], parent: int) -> None:
    """A local worker: set its devices and threads, then run specs from `conn` until told to stop."""
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the driver, which stops the workers
    _exit_with_parent(parent)
    from layernas_tf.runner import run_trial, setup_worker_tensorflow

    setup_worker_tensorflow(threads)
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        conn.send(run_trial(spec))


class _Worker:
    def __init__(self, context, index: int, env: Dict[str, str], threads: Optional[int]):
        self.index = index
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, env, threads, os.getpid()), daemon=True,
                                       name=f"layernas-worker-{index}")
        self.process.start()
        child.close()
        self.spec: Optional[TrialSpec] = None
        self.trials = 0


# A trial frees what it trained (runner.run_trial unregisters the custom gradients that kept every
# traced graph alive, ~70 MB per trial before). What a long-lived worker still gains is small and
# slowing (~0.3-0.7 MB per trial over 100 trials, layernas-memory-benchmark); replacing a worker after
# this many trials bounds it, at the cost of one TensorFlow start per that many trials.
MAX_TRIALS_PER_WORKER = 200


class LocalExecutor(Executor):
    """`workers` spawned processes on this machine, one trial each at a time.

    Args:
      workers: number of worker processes.
      gpus: GPUs to spread them over (None: counted); worker i sees GPU i mod G through
        CUDA_VISIBLE_DEVICES, with memory growth on.
      max_trials_per_worker: a worker is replaced by a fresh process after this many trials, which
        bounds the memory Keras leaks per trained model (0: never).
      threads_per_worker: TensorFlow intra/inter-op threads per worker (None: on CPU, the cores divided
        among the default number of workers, whatever `workers` is: float results depend on the thread
        count, so this keeps a trial's reward the same with 1 worker or with N; with GPUs, TensorFlow's
        default).
    """

    def __init__(self, workers: int, gpus: Optional[int] = None, threads_per_worker: Optional[int] = None,
                 max_trials_per_worker: int = MAX_TRIALS_PER_WORKER):
        if workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        self.slots = workers
        self._context = multiprocessing.get_context("spawn")
        self._gpus = visible_gpus() if gpus is None else gpus
        if threads_per_worker is None and not self._gpus:
            threads_per_worker = default_threads_per_trial()
        self._threads = threads_per_worker
        self._max_trials = max_trials_per_worker
        self._workers = [self._start(i) for i in range(workers)]
        self.replaced = 0  # workers that died under a trial
        self.recycled = 0  # workers retired after max_trials_per_worker trials

    def _start(self, index: int) -> _Worker:
        env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        if self._gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index % self._gpus)
        else:
            env["CUDA_VISIBLE_DEVICES"] = "-1"
        if self._threads:
            env["OMP_NUM_THREADS"] = str(self._threads)
        return _Worker(self._context, index, env, self._threads)

    @property
    def running(self) -> int:
        return sum(w.spec is not None for w in self._workers)

    def submit(self, spec: TrialSpec) -> None:
        idle = next((w for w in self._workers if w.spec is None), None)
        if idle is None:
            raise RuntimeError(f"all {self.slots} workers are busy; collect() before submitting more")
        idle.spec = spec
        try:
            idle.conn.send(spec)
        except (BrokenPipeError, OSError):
            pass  # the worker died while idle: collect() reports the trial as lost and replaces it

    def collect(self, timeout: Optional[float] = None) -> List[TrialOutcome]:
        busy = [w for w in self._workers if w.spec is not None]
        if not busy:
            return []
        waitables = {}
        for w in busy:
            waitables[w.conn] = w
            waitables[w.process.sentinel] = w
        ready = multiprocessing.connection.wait(list(waitables), timeout)
        outcomes, done = [], set()
        for handle in ready:
            worker = waitables[handle]
            if worker.index in done:
                continue
            done.add(worker.index)
            outcome = None
            if handle is worker.conn or worker.conn.poll():
                try:
                    outcome = worker.conn.recv()
                except (EOFError, OSError):
                    outcome = None
            if outcome is None:
                outcome = self._replace(worker)
            else:
                worker.spec = None
                worker.trials += 1
                if self._max_trials and worker.trials >= self._max_trials:
                    self._recycle(worker)
            outcomes.append(outcome)
        return outcomes

    def _recycle(self, worker: _Worker) -> None:
        """Retire a worker that ran its share of trials and start a fresh process in its place."""
        self._stop(worker)
        self._workers[worker.index] = self._start(worker.index)
        self.recycled += 1

    @staticmethod
    def _stop(worker: _Worker) -> None:
        try:
            worker.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        worker.process.join(timeout=10)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()

    def _replace(self, worker: _Worker) -> TrialOutcome:
        """The lost trial of a dead worker, after starting a new worker in its place."""
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            cause = f"worker {worker.index} (pid {worker.process.pid}) was killed by {name}"
            if name == "SIGKILL":
                cause += " (e.g. the out-of-memory killer)"
        else:
            cause = f"worker {worker.index} (pid {worker.process.pid}) exited with code {code}"
        outcome = lost_outcome(worker.spec, cause)
        worker.conn.close()
        self._workers[worker.index] = self._start(worker.index)
        self.replaced += 1
        return outcome

    def worker_pids(self) -> List[int]:
        return [w.process.pid for w in self._workers]

    def close(self) -> None:
        for w in self._workers:
            self._stop(w)
        self._workers = []


def _ray_trial(spec: TrialSpec, threads: Optional[int]) -> TrialOutcome:
    """A Ray task: set up TensorFlow inside the worker (memory growth, threads), then run the trial."""
    from layernas_tf.runner import run_trial, setup_worker_tensorflow

    setup_worker_tensorflow(threads)
    return run_trial(spec)


class RayExecutor(Executor):
    """Each trial a Ray task of `cpus_per_trial` CPUs and `gpus_per_trial` GPUs.

    Args:
      address: 'auto' or 'HOST:PORT' of a running cluster; None starts a local Ray instance.
      cpus_per_trial, gpus_per_trial: the task's resources (Ray places it where they are free).
      slots: trials in flight (None: what the cluster's resources allow at once).
      init_kwargs: extra `ray.init` arguments when starting a local instance (e.g. num_cpus).
    """

    def __init__(self, address: Optional[str] = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
                 slots: Optional[int] = None, **init_kwargs):
        try:
            import ray
        except ImportError:
            raise ImportError('the ray executor needs Ray: pip install -e ".[ray]"') from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                     **({} if address else init_kwargs))
            self._started = True
        resources = ray.cluster_resources()
        if slots is None:
            by_cpu = int(resources.get("CPU", 1) // cpus_per_trial) if cpus_per_trial else 10 ** 6
            by_gpu = int(resources.get("GPU", 0) // gpus_per_trial) if gpus_per_trial else 10 ** 6
            slots = max(1, min(by_cpu, by_gpu))
        self.slots = slots
        threads = max(1, int(cpus_per_trial)) if cpus_per_trial else None
        # max_calls: Ray replaces a worker process after that many trials, which bounds what Keras leaks
        # per trained model, as the local executor does.
        # (max_calls is a property of the remote function, not of `.options()`.)
        self._task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0,
                                max_calls=MAX_TRIALS_PER_WORKER)(_ray_trial)
        self._threads = threads
        self._refs: Dict[object, TrialSpec] = {}

    @property
    def running(self) -> int:
        return len(self._refs)

    def submit(self, spec: TrialSpec) -> None:
        self._refs[self._task.remote(spec, self._threads)] = spec

    def collect(self, timeout: Optional[float] = None) -> List[TrialOutcome]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        outcomes = []
        for ref in ready:
            spec = self._refs.pop(ref)
            try:
                outcomes.append(self._ray.get(ref))
            except self._ray.exceptions.RayError as e:  # the worker or its node died under the task
                outcomes.append(lost_outcome(spec, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"))
        return outcomes

    def close(self) -> None:
        for ref in list(self._refs):
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._started:
            self._ray.shutdown()


def make_executor(name: str, workers: Optional[int] = None, ray_address: Optional[str] = None,
                  cpus_per_trial: float = 1, gpus_per_trial: float = 0, **ray_init) -> Executor:
    """The executor `name` (one of EXECUTORS).

    Raises:
      ValueError: an unknown name.
    """
    if name == "in_process":
        return InProcessExecutor()
    if name == "local":
        return LocalExecutor(workers or default_workers())
    if name == "ray":
        return RayExecutor(ray_address, cpus_per_trial, gpus_per_trial, slots=workers, **ray_init)
    raise ValueError(f"executor={name!r}; allowed: {', '.join(EXECUTORS)}")


def run_specs(executor: Executor, specs: List[TrialSpec]) -> List[TrialOutcome]:
    """Run `specs` on `executor` (as many at once as it has slots); outcomes in the specs' order."""
    queue, outcomes = list(specs), {}
    while queue or executor.running:
        while queue and executor.running < executor.slots:
            executor.submit(queue.pop(0))
        for outcome in executor.collect():
            outcomes[outcome.number] = outcome
    return [outcomes[spec.number] for spec in specs]
