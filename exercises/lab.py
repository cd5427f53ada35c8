"""The lab's syllabus and a student's folder: the order of the exercises, what to read first, the numbered
questions, and the student's work folder (copies of the stubs, answers.md, the log of checks).

Standard library only: check.py imports it before it knows whether torch is needed.

    work folder   exercises/work/ (git-ignored), or $EXERCISES_WORK: the student's copies of the stubs
                  (check.py NAME --start), answers.md, log.jsonl (one line per --start and per check)
    runs folder   runs/exercises/, or $EXERCISES_RUNS, or --runs DIR: the experiments' runs, which a teacher
                  can prepare once (python exercises/run.py --prepare) and copy to every laptop
"""
import datetime
import json
import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ARXIV = {"mae": "https://arxiv.org/abs/2111.06377", "rvm": "https://arxiv.org/abs/2512.13684",
         "siammae": "https://arxiv.org/abs/2305.14344", "vicmae": "https://arxiv.org/abs/2303.12001",
         "sigma": "https://arxiv.org/abs/2407.15447"}

# the lab in order: (name, kind, minutes, what to read first). Implement exercises are timed for writing the
# function; an experiment's minutes are for checking it and answering its questions once its runs exist
# (their training is `run.py --prepare`'s queue).
SYLLABUS = [
    ("masking", "implement", 20, "MAE Sec. 3 'Masking' (arXiv); SiamMAE Sec. 3 'Asymmetric masking'"),
    ("patchify", "implement", 20, "MAE Sec. 3 'MAE encoder' and 'Reconstruction target'"),
    ("decoder_block", "implement", 15, "SiamMAE Sec. 3 'Decoder'"),
    ("rvm_core", "implement", 20, "RVM Sec. 3.2 'The Rise of GRU'"),
    ("frame_model", "experiment", 10, "RVM Sec. 4.4 and Fig. 6"),
    ("rvm_sources", "experiment", 5, "RVM Sec. 4.3, Table 3a"),
    ("gru_vs_attention", "experiment", 10, "RVM Sec. 3.2 and 4.3, Table 3b"),
    ("info_nce", "implement", 25, "ViC-MAE Sec. 3.2, Eq. 3"),
    ("vicmae_pooling", "implement", 15, "ViC-MAE Sec. 3.2 (the pooling operator and the two heads), Table 3b"),
    ("sinkhorn", "implement", 25, "SIGMA Sec. 3.3, Eq. 3-4"),
    ("swapped_prediction", "implement", 15, "SIGMA Sec. 3.3, Eq. 5-7"),
    ("sigma_collapse", "experiment", 5, "SIGMA Sec. 3.2-3.3 and Table 7b"),
    ("siammae_masking", "experiment", 10, "SiamMAE Sec. 3 'Asymmetric masking' and Table 2d"),
    ("square_iou", "implement", 25, "RVM Sec. 4.4"),
    ("label_propagation", "implement", 45, "SiamMAE Sec. 4.1 'Evaluation' (the DAVIS protocol)"),
]
KIND = {name: kind for name, kind, _, _ in SYLLABUS}
# the two-hour path (STUDENT.md); the others are extras, for a student who finishes early or for home
CORE = ("masking", "rvm_core", "frame_model", "rvm_sources", "gru_vs_attention", "sinkhorn", "sigma_collapse",
        "siammae_masking")

# the numbered questions, each under the exercise that asks it; the answers go in work/answers.md
QUESTIONS = [
    ("frame_model", "Look at one frame of the noise-square video (demo.png): is there a square in it? Why can a "
                    "frame model such as SiamMAE not segment the moving square, and what does RVM compare to find "
                    "it?"),
    ("rvm_sources", "With one source frame RVM's core takes a single step from an empty state. What does it then "
                    "never learn, and why does that show on 16-frame test videos?"),
    ("gru_vs_attention", "On the videos as long as their training clips, how do the two cores compare? What "
                         "happens to the self-attention core on longer videos, and why?"),
    ("gru_vs_attention", "How does the time of `features` grow from 16 to 128 frames for each core? Which core can "
                         "stream a video of any length in constant memory, and why?"),
    ("sigma_collapse", "The l2 run's loss goes to almost 0. Why is that bad news here, and what do Sinkhorn's "
                       "targets (Eq. 3-4) forbid that the l2 targets allow?"),
    ("siammae_masking", "In this toy world the mask ratio makes no difference. What does the visible half of f2 "
                        "offer that f1 does not, here and in a real video, and what would a world need for the "
                        "paper's argument for 95% (Table 2d) to show?"),
    ("vicmae_pooling", "Why does the pooled vector leave out the [CLS] token, and why is it l2-normalized before "
                       "the contrastive loss? (ViC-MAE Sec. 3.2)"),
]
PLACEHOLDER = "(write your answer here)"


def question_numbers(name):
    """The numbers (1-based) of exercise `name`'s questions."""
    return [i + 1 for i, (ex, _) in enumerate(QUESTIONS) if ex == name]


def work_dir(path=None):
    """The student's work folder: `path`, else $EXERCISES_WORK, else exercises/work/."""
    return os.path.abspath(path or os.environ.get("EXERCISES_WORK") or os.path.join(HERE, "work"))


def runs_dir(path=None):
    """The experiments' runs: `path`, else $EXERCISES_RUNS, else runs/exercises/ in the project folder."""
    return os.path.abspath(path or os.environ.get("EXERCISES_RUNS") or os.path.join(ROOT, "runs", "exercises"))


def work_copy(name, work=None):
    return os.path.join(work_dir(work), f"{name}.py")


def answers_path(work=None):
    return os.path.join(work_dir(work), "answers.md")


def ensure_answers(work=None):
    """Create work/answers.md with every question and an answer slot, unless it exists (never overwritten)."""
    path = answers_path(work)
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = ["# My answers", "", "Write each answer under its question, in place of the line in parentheses. "
             "`python exercises/check.py --report` shows which ones are answered.", ""]
    for i, (name, text) in enumerate(QUESTIONS, 1):
        lines += [f"## {i}. {name}", "", f"> {text}", "", PLACEHOLDER, ""]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)
    return path


def answered(work=None):
    """{question number: True when its slot holds text of the student's own} from work/answers.md."""
    done = {i: False for i in range(1, len(QUESTIONS) + 1)}
    path = answers_path(work)
    if not os.path.exists(path):
        return done
    text = open(path, encoding="utf-8", errors="replace").read()
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        number = re.match(r"(\d+)\.", part)
        if not number or int(number.group(1)) not in done:
            continue
        body = [line.strip() for line in part.splitlines()[1:]]
        done[int(number.group(1))] = any(line and not line.startswith(">") and line != PLACEHOLDER for line in body)
    return done


def start(name, work=None):
    """Copy the stub exercises/NAME.py to the work folder -> (path, created). An existing copy is kept."""
    path = work_copy(name, work)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ensure_answers(work)
    if os.path.exists(path):
        return path, False
    shutil.copyfile(os.path.join(HERE, f"{name}.py"), path)
    log(name, "start", work=work)
    return path, True


def log(name, event, status="", seconds=0.0, work=None):
    """Append one line to work/log.jsonl (the report's source)."""
    os.makedirs(work_dir(work), exist_ok=True)
    row = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "exercise": name,
           "event": event, "status": status, "seconds": round(seconds, 2)}
    with open(os.path.join(work_dir(work), "log.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")


def read_log(work=None):
    path = os.path.join(work_dir(work), "log.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path, encoding="utf-8", errors="replace"):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:   # a line cut by a killed process: the others still count
            continue
    return rows


def report(work=None):
    """One table of the student's folder: every exercise's status, its checks, the minutes from its start (or
    first check) to its first pass (or to its last check), the seconds its checks took, and which of its
    questions are answered."""
    rows, answers = read_log(work), answered(work)
    lines = [f"report of {work_dir(work)}", "",
             "| # | exercise | kind | status | checks | minutes from start to pass | seconds in checks | "
             "questions answered |",
             "|---|---|---|---|---|---|---|---|"]
    passed_n = 0
    for i, (name, kind, _, _) in enumerate(SYLLABUS, 1):
        mine = [r for r in rows if r.get("exercise") == name]
        checks = [r for r in mine if r.get("event") == "check"]
        started = kind == "implement" and os.path.exists(work_copy(name, work))
        if not checks:
            status = "started, not checked" if started else "not started"
        else:
            passes = [r for r in checks if r.get("status") in ("pass", "no effect")]
            status = (passes[0]["status"] if passes else checks[-1].get("status") or "fail")
            passed_n += bool(passes)
        minutes = ""
        if mine and checks:
            t0 = _time(mine[0]["time"])
            first_pass = next((r for r in checks if r.get("status") in ("pass", "no effect")), checks[-1])
            minutes = f"{(_time(first_pass['time']) - t0).total_seconds() / 60:.0f}"
        qs = question_numbers(name)
        q = ", ".join(f"{n} {'yes' if answers[n] else 'no'}" for n in qs) if qs else "-"
        core = "" if name in CORE else " (extra)"
        seconds = f"{sum(r.get('seconds', 0) for r in checks):.0f}" if checks else ""
        lines.append(f"| {i} | {name}{core} | {kind} | {status} | {len(checks)} | {minutes} | {seconds} | {q} |")
    n_answered = sum(answers.values())
    lines += ["", f"{passed_n} of {len(SYLLABUS)} exercises passed; {n_answered} of {len(QUESTIONS)} questions "
                  f"answered ({answers_path(work)})"]
    return "\n".join(lines)


def _time(text):
    return datetime.datetime.fromisoformat(text)
