"""The exercise checker: python exercises/check.py NAME [--start] [--file PATH] [--solution] [--runs DIR]

Start an implement exercise with `check.py NAME --start`: it copies the stub
exercises/NAME.py to your work folder, exercises/work/NAME.py (git ignores it,
so the shipped stubs stay stubs), and creates exercises/work/answers.md with
the lab's questions. `check.py NAME` then checks your copy: named property
checks first (shapes, invariants, limiting cases), each with a hint, then a
comparison with the project's own implementation. Your file runs in a process
of its own, with a time limit (ten times the reference's time, at least 10 s).

An experiment exercise measures its runs (prepared by `python exercises/run.py
--prepare`) in runs/exercises/, $EXERCISES_RUNS or --runs DIR, and says whether
the result falls in the expected range.

Exit status 0 on a pass (or an experiment's expected "no effect"), 1 on a fail,
2 on a usage error, 130 when interrupted. `--list` lists the exercises,
`--report` prints your folder's table for the teacher.
"""
import argparse
import json
import os
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import lab  # noqa: E402   (standard library only: an implement check imports torch in its subprocess alone)

START_LIMIT_S = 300       # the subprocess's imports and the reference's run (a slow laptop, a cold disk)
TIME_LIMIT_FLOOR_S = 10   # the least time a student's code gets, whatever the reference's time


def run_grader(name, path, solution=False, floor=TIME_LIMIT_FLOOR_S):
    """Check exercise `name` on `path` in a subprocess (exercises/checks.py --grade) -> (status, message).
    The student's code gets max(floor, 10 x the reference's time); sys.exit, os._exit or an endless loop in it
    is a fail in one line."""
    read, write = os.pipe()
    cmd = [sys.executable, os.path.join(HERE, "checks.py"), "--grade", name, "--fd", str(write)]
    cmd += ["--solution"] if solution else ["--file", path]
    proc = subprocess.Popen(cmd, pass_fds=(write,), stdin=subprocess.DEVNULL)
    os.close(write)
    events, buffer, limit = {}, b"", None
    deadline = time.monotonic() + START_LIMIT_S
    try:
        while "result" not in events:
            wait = deadline - time.monotonic()
            if wait <= 0:
                proc.kill()
                if limit is None:
                    return "timeout", (f"FAIL {name}: the checker's process did not start within {START_LIMIT_S} s "
                                       f"(importing torch and the project); try again on a less busy machine")
                return "timeout", (f"FAIL {name}: your code ran longer than {limit:.0f} s (ten times the reference's "
                                   f"time, at least {floor} s) and was stopped: an endless loop, or a very slow one?")
            ready, _, _ = select.select([read], [], [], min(wait, 0.5))
            if not ready:
                continue
            chunk = os.read(read, 65536)
            if not chunk:   # the subprocess closed its end: it exited (sys.exit / os._exit in student code)
                code = proc.wait()
                return "crash", (f"FAIL {name}: your code ended the checker's process (exit status {code}) before "
                                 f"the checks finished: a pass comes only from the checker, after every check ran")
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                event = json.loads(line)
                events[event["event"]] = event
                if event["event"] == "ready":
                    limit = max(floor, 10 * event["reference_s"])
                    deadline = time.monotonic() + limit
        return events["result"]["status"], events["result"]["message"]
    finally:
        os.close(read)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def check_implement(name, path=None, solution=False, floor=TIME_LIMIT_FLOOR_S, work=None):
    """Check implement exercise `name` -> (status, message). path None: the work copy (its check is logged in
    the work folder, and answers.md created); a work copy not started yet says how to start it."""
    own = path is None and not solution
    path = os.path.abspath(path or lab.work_copy(name, work))
    if own and not os.path.exists(path):
        return "not started", (f"{name}: not started yet. Start it with: python exercises/check.py {name} --start "
                               f"(copies the stub to {os.path.relpath(path)})")
    t0 = time.monotonic()
    status, message = run_grader(name, path, solution, floor)
    if own:
        lab.ensure_answers(work)
        lab.log(name, "check", status, time.monotonic() - t0, work)
    return status, message


def list_exercises():
    import checks
    import experiments
    print("in the lab's order (exercises/STUDENT.md):")
    for name, kind, minutes, reading in lab.SYLLABUS:
        goal = checks.IMPLEMENT[name]["goal"] if kind == "implement" else experiments.EXPERIMENTS[name]["question"]
        print(f"  {name:20s} {kind:10s} {minutes:3d} min  {goal}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__[
                                         __doc__.index("\n\n") + 2:])
    parser.add_argument("name", nargs="?", help="the exercise (see --list)")
    parser.add_argument("--list", action="store_true", help="list the exercises in the lab's order")
    parser.add_argument("--start", action="store_true", help="copy the stub to your work folder and start")
    parser.add_argument("--report", action="store_true", help="one table of your work folder, for the teacher")
    parser.add_argument("--solution", action="store_true", help="check the project's reference instead")
    parser.add_argument("--file", help="check this file instead of your work copy")
    parser.add_argument("--work", help="your work folder (default $EXERCISES_WORK, else exercises/work)")
    parser.add_argument("--runs", help="the experiments' runs (default $EXERCISES_RUNS, else runs/exercises)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_FLOOR_S,
                        help="the least seconds your code gets (default %(default)s; 10x the reference's if more)")
    args = parser.parse_args(argv)
    if args.time_limit <= 0:
        parser.error(f"--time-limit must be a positive number of seconds; got {args.time_limit}")
    work = lab.work_dir(args.work)
    if os.path.exists(work) and not os.path.isdir(work):
        parser.error(f"the work folder {work} (--work or EXERCISES_WORK) is a file, not a folder")
    if args.report:
        print(lab.report(args.work))
        return 0
    if args.list or not args.name:
        list_exercises()
        return 0
    if args.name not in lab.KIND:
        parser.error(f"no exercise {args.name!r}; --list shows them")
    kind = lab.KIND[args.name]
    if kind == "implement":
        if args.runs:
            parser.error("--runs is for experiment exercises")
        if args.start:
            path, created = lab.start(args.name, args.work)
            answers = os.path.relpath(lab.answers_path(args.work))
            print(f"{'started' if created else 'already started'}: edit {os.path.relpath(path)}, then run "
                  f"python exercises/check.py {args.name}\n(answers to the lab's questions go in {answers})")
            return 0
        status, message = check_implement(args.name, args.file, args.solution, args.time_limit, args.work)
        print(message)
        return 0 if status == "pass" else 1
    if args.solution or args.file or args.start:
        parser.error("--solution, --file and --start are for implement exercises; an experiment measures its runs "
                     "(python exercises/run.py --prepare trains them)")
    import experiments
    runs = lab.runs_dir(args.runs)
    if os.path.exists(runs) and not os.path.isdir(runs):
        parser.error(f"--runs {runs} is a file, not a folder of runs")
    t0 = time.monotonic()
    status, message = experiments.check(args.name, args.runs)
    lab.ensure_answers(args.work)
    lab.log(args.name, "check", status, time.monotonic() - t0, args.work)
    print(message)
    return 0 if status in ("pass", "no effect") else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: nothing was checked", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:   # the output went to a reader that closed early (check.py --report | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # so the exit's flush is silent too
        sys.exit(0)
