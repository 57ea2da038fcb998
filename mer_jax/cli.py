"""The `mer-jax` command: ``mer-jax --help`` lists the commands, ``mer-jax COMMAND --help`` shows one.

Flags are absl flags and the experiment is an ml_collections config file (``--config=configs/x.py``,
a file or the name of a built-in one, with ``--config.section.field=value`` overrides), as in Flax's
examples and big_vision; each command reads the flags it names in `COMMANDS`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import pathlib
import signal
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mer_jax.config import override_field  # noqa: E402

config_flags.DEFINE_config_file("config", None, "The experiment: a config file, or a built-in config's name "
                                "(mer-jax configs lists them); then --config.section.field=value overrides.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "The run folder (checkpoints, metrics.json, report.txt, TensorBoard), or an "
                    "exported model folder for predict and attention.")
flags.DEFINE_string("data", "data/demo_iemocap", "Where the synthetic demo corpus is written.")
flags.DEFINE_bool("restart", False, "Delete the workdir's checkpoints and outputs and start over (default: resume).")
flags.DEFINE_bool("distributed", False, "Several processes: call jax.distributed.initialize() first (TPU pods, "
                  "SLURM, Kubernetes, or the flags below / JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID).")
flags.DEFINE_string("coordinator", None, "--distributed: the coordinator's HOST:PORT (process 0 listens there).")
flags.DEFINE_integer("num_processes", None, "--distributed: how many processes train together.")
flags.DEFINE_integer("process_id", None, "--distributed: this process's index, 0 .. num_processes - 1.")
flags.DEFINE_string("table", None, "A paper table (configs/tables/), e.g. lpgnet_table3.")
flags.DEFINE_list("rows", None, "Train only these rows (names as in the table module); the others are listed "
                  "from earlier runs, or as not run.")
flags.DEFINE_string("audio", None, "An audio file (any format and sample rate that soundfile / librosa read); "
                    "predict: or a folder of them.")
flags.DEFINE_string("text", None, "Its transcript.")
flags.DEFINE_string("utterance", None, "An utterance id of the run's corpus.")
flags.DEFINE_bool("top_tokens", False, "The most attended tokens of each class over the run's test part.")
flags.DEFINE_string("out", None, "attention: output folder (default <workdir>/attention/<utterance or top_tokens>); "
                    "predict (many utterances): the predictions file (default: the terminal); export: the model "
                    "folder.")
flags.DEFINE_string("manifest", None, "A CSV with columns audio and/or text (and optionally id), one utterance "
                    "per row; audio paths relative to the CSV's folder.")
flags.DEFINE_string("transcripts", None, "--audio=FOLDER: a CSV with columns audio (paths relative to the CSV's "
                    "folder) and text (default: a .txt file beside each audio file).")
flags.DEFINE_string("format", None, "predict: csv, json or jsonl (default: csv for many utterances, a readable line "
                    "for one); export: folder, or savedmodel (the folder plus a TensorFlow SavedModel in it).")
flags.DEFINE_string("push_to_hub", None, "export: also upload the folder to this Hugging Face Hub model id (user/name).")
flags.DEFINE_string("model", None, "serve: a run, an exported model folder or the Hub id of one.")
flags.DEFINE_string("host", "127.0.0.1", "serve: the address to listen on (0.0.0.0: every network interface).")
flags.DEFINE_integer("port", 7860, "serve: the port.")
flags.DEFINE_string("corpus", None, "Score the run on every utterance of this corpus instead (cross-corpus).")
flags.DEFINE_string("root", None, "--corpus: the corpus' folder.")
flags.DEFINE_string("label_map", "", "--corpus: code=class,... mapping its labels onto the run's classes "
                    "(data.label_map; unmapped labels are excluded and counted).")
flags.DEFINE_bool("keep_host_memory", True, "Keep freed host memory in the process (glibc mallopt) so that XLA's CPU "
                  "programs reuse their pages instead of faulting in fresh ones every step (about 10% of a CPU "
                  "training step); the process then holds its peak host memory. See mer_jax/host_memory.py.")
flags.DEFINE_integer("seed_index", None, "Which of the run's seeds (default: the best on validation).")
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Command:
    """One `mer-jax` command: what it does (its function's docstring), its usage line, the flags it reads
    and an example."""
    run: object
    usage: str
    flags: tuple[str, ...]
    example: str

    @property
    def paragraphs(self) -> list[str]:
        """Its docstring's paragraphs, each on one line, as the help prints them."""
        return [" ".join(paragraph.split()).replace("``", "") for paragraph in self.run.__doc__.split("\n\n")]

    @property
    def summary(self) -> str:
        return self.paragraphs[0]


def _help(command: str | None) -> str:
    """``mer-jax --help`` (every command, one line each) or ``mer-jax COMMAND --help``."""
    from mer_jax import __version__  # noqa: PLC0415

    if command is None:
        width = max(map(len, COMMANDS))
        lines = [f"mer-jax {__version__}: multimodal (speech + text) emotion recognition in JAX", "",
                 "usage: mer-jax COMMAND [--flags]      mer-jax COMMAND --help: its flags and an example", "",
                 "commands:"]
        lines += [f"  {name:<{width}}  {spec.summary}" for name, spec in COMMANDS.items()]
        lines += ["", "An experiment is a config: --config=configs/demo.py (a file, or a built-in config; "
                  "mer-jax configs lists them)", "and --config.section.field=value overrides (mer-jax config "
                  "--config=X prints every field).", "Other flags: --version, --helpfull (absl's full list)."]
        return "\n".join(lines)
    spec = COMMANDS[command]
    lines = [f"usage: {spec.usage}", "", *(textwrap.fill(paragraph, 100) + "\n" for paragraph in spec.paragraphs),
             "flags:"]
    for name in spec.flags:
        flag = FLAGS[name]
        default = "" if flag.default in (None, "", False) or name == "config" else f" (default: {flag.default_as_str})"
        lines.append(f"  --{name:<14} {flag.help}{default}")
    lines += ["", "example:", f"  {spec.example}"]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    from mer_jax.config import validate  # noqa: PLC0415
    from mer_jax.errors import ConfigError, CorpusError, InputError  # noqa: PLC0415
    from mer_jax.errors import TrainingDiverged  # noqa: PLC0415
    from mer_jax.host_memory import keep_freed_host_memory  # noqa: PLC0415

    if FLAGS.keep_host_memory:  # before JAX runs anything: it acts on threads that have not allocated yet
        keep_freed_host_memory()
    logging.set_verbosity(logging.WARNING)  # keep Orbax's per-save INFO lines out of the user's terminal
    command = argv[1]
    if len(argv) > 2:
        sys.exit(f"mer-jax {command}: unexpected argument(s) {argv[2:]} (see mer-jax {command} --help)")
    try:
        if FLAGS.config is not None and command != "config":
            validate(FLAGS.config)
        COMMANDS[command].run()
    except app.UsageError as e:
        sys.exit(f"mer-jax {command}: {e} (see mer-jax {command} --help)")
    # the user's input (or a run it made diverge), not a bug: one line, no traceback
    except (ConfigError, CorpusError, InputError, FileNotFoundError, TrainingDiverged) as e:
        sys.exit(f"mer-jax {command}: {e}")


# The --config.field=value overrides of the commands that take no --config: table passes them on to every row,
# evaluate applies them to the run's saved config (where its data lives now)
COMMAND_OVERRIDES: dict[str, list[str]] = {"table": [], "evaluate": []}


def _parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, after the help, --version and the command's name are answered, with unknown
    configs, unknown config fields and badly typed values reported in one line."""
    from mer_jax import __version__  # noqa: PLC0415
    from mer_jax.configs import built_in, resolve  # noqa: PLC0415

    command = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
    if "--version" in argv:
        print(f"mer-jax {__version__}")
        sys.exit(0)
    if "--helpfull" not in argv and (command is None or any(a in ("--help", "-h", "--helpshort") for a in argv)):
        print(_help(command if command in COMMANDS else None))
        sys.exit(0 if command is None or command in COMMANDS else 2)
    if command not in COMMANDS:
        near = difflib.get_close_matches(command, COMMANDS, n=1)
        sys.exit(f"mer-jax: unknown command {command!r}{f' (did you mean {near[0]}?)' if near else ''}; the commands: "
                 f"{', '.join(COMMANDS)} (mer-jax --help)")
    if command in COMMAND_OVERRIDES:  # no --config here: the overrides apply to each row's, or the run's, config
        COMMAND_OVERRIDES[command].extend(a for a in argv if a.startswith("--config."))
        argv = [a for a in argv if not a.startswith("--config.")]
    configs = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for config in configs:
        if not pathlib.Path(resolve(config)).is_file():
            sys.exit(f"mer-jax: no config {config!r}: not a file, nor a built-in config ({', '.join(built_in())})")
    argv = [f"--config={resolve(a.split('=', 1)[1])}" if a.startswith("--config=") else a for a in argv]
    try:
        return FLAGS(argv)
    except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
        reason = e.args[0] if e.args else e
        while isinstance(reason, BaseException) and reason.args:  # ml_collections wraps KeyErrors
            reason = reason.args[0]
        sys.exit(f"mer-jax: bad flag or config override: {reason}")


def _config():
    if FLAGS.config is None:
        raise app.UsageError("--config=configs/<experiment>.py is required")
    return FLAGS.config


def _workdir() -> pathlib.Path:
    if FLAGS.workdir is None:
        raise app.UsageError("--workdir is required")
    return pathlib.Path(FLAGS.workdir)


def configs() -> None:
    """List the built-in configs (``--config=NAME``) and paper tables (``--table=NAME``), one line each."""
    from mer_jax.configs import built_in  # noqa: PLC0415
    from mer_jax.configs.tables import built_in_tables  # noqa: PLC0415

    for title, entries in (("configs (--config=configs/NAME.py)", built_in()),
                           ("paper tables (mer-jax table --table=NAME)", built_in_tables())):
        width = max(map(len, entries))
        print(f"{title}:")
        print("\n".join(f"  {name:<{width}}  {description}" for name, description in entries.items()))


def config() -> None:
    """Print the resolved config, overrides applied: every field, its value and what it means."""
    from mer_jax.config import describe  # noqa: PLC0415

    print(describe(_config()))


def prepare() -> None:
    """Read a config's corpus, print what it holds, and compute and cache its features."""
    from mer_jax.data.features import MfccParams, audio_features  # noqa: PLC0415
    from mer_jax.models.registry import get_model_spec  # noqa: PLC0415
    from mer_jax.training.experiment import read_model_corpus  # noqa: PLC0415

    config = _config()
    utterances, report = read_model_corpus(config)
    print(report.summary())
    if "audio" not in get_model_spec(config.model.name).modalities(config):
        print(f"model.modalities = {config.model.modalities!r} hears no audio: nothing to cache")
        return
    if any(u.audio_path is None for u in utterances):
        print("no audio in this corpus: nothing to cache")
        return
    features = audio_features(utterances, MfccParams.from_config(config.features), config.data.cache_dir)
    print(f"MFCC cached in {config.data.cache_dir}: {len(features.lengths)} utterances, "
          f"{int(features.lengths.sum())} frames ({int((features.lengths == config.features.max_frames).sum())} "
          f"truncated at {config.features.max_frames})")


def _initialize_distributed() -> None:
    """Join the other processes of a multi-process run. CPU collectives (gloo) let several processes on
    CPUs, e.g. on one machine, train together as several hosts would; accelerators use their own."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator, num_processes=FLAGS.num_processes,
                               process_id=FLAGS.process_id)


def _cache_compiled_programs(config) -> None:
    """Keep XLA's compiled programs under ``data.cache_dir``/xla (JAX's persistent compilation cache):
    folds, seeds' reruns, table rows and resumed runs whose steps have the same shapes load the compiled
    step instead of compiling it again (an EmoDB leave-one-speaker-out run of one epoch per fold: 65 s
    instead of 106 s)."""
    import jax  # noqa: PLC0415

    if config.data.cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(pathlib.Path(config.data.cache_dir) / "xla"))


def train() -> None:
    """Train a config's model and test it once: checkpoints, metrics, report and plots in --workdir.

    The checkpoint is chosen on validation data from the training speakers or sessions; the test part is
    scored once, with the protocol printed beside every number. A run resumes from its latest checkpoint
    unless --restart."""
    from mer_jax.training.loop import train_and_evaluate  # noqa: PLC0415

    if FLAGS.distributed:
        _initialize_distributed()
    _cache_compiled_programs(_config())
    train_and_evaluate(_config(), _workdir(), restart=FLAGS.restart)


def table() -> None:
    """Train every row of a paper table, then write the table with the paper's numbers beside ours.

    Each row is a resumable run under --workdir/<row>. Each ``--config.field=value`` override goes to every row whose config has that field, over the
    row's own setting of it (e.g. one ``text.encoder`` for every row where the paper's is unavailable),
    and is named above the table."""
    import runpy  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    from mer_jax.configs import resolve  # noqa: PLC0415
    from mer_jax.evaluation.tables import load_table, markdown  # noqa: PLC0415

    if FLAGS.table is None:
        raise app.UsageError("table needs --table=<name> (configs/tables/)")
    spec, workdir = load_table(FLAGS.table), _workdir()
    configs = {name: resolve(config or spec.CONFIG) for name, _, config, _, _ in spec.ROWS}
    applies = {name: [o for o in COMMAND_OVERRIDES["table"] if _has_field(runpy.run_path(path)["get_config"](), o)]
               for name, path in configs.items()}
    unused = [o for o in COMMAND_OVERRIDES["table"] if not any(o in a for a in applies.values())]
    if unused:
        raise app.UsageError(f"table: no row's config has the field of {unused}")
    names = [name for name, *_ in spec.ROWS]
    unknown = sorted(set(FLAGS.rows or ()) - set(names))
    if unknown:
        raise app.UsageError(f"table --rows: no row {unknown} in {FLAGS.table}; its rows: {names}")
    row_dirs = {name: workdir / name for name in names}
    for name, label, _, overrides, _ in spec.ROWS:
        if FLAGS.rows and name not in FLAGS.rows:
            continue
        row = [f"--config.{k}={v!r}" if isinstance(v, tuple) else f"--config.{k}={v}" for k, v in overrides.items()]
        print(f"=== {label}: {workdir / name}", flush=True)
        replaced = [o for o in applies[name] if override_field(o) in overrides]
        if replaced:
            print(f"note: {' '.join(replaced)} replaces the row's own setting", flush=True)
        done = subprocess.run([sys.executable, "-m", "mer_jax.cli", "train", f"--config={configs[name]}",
                               f"--workdir={workdir / name}", *row, *applies[name]])  # the command line wins
        if done.returncode:
            sys.exit(f"mer-jax table: row {label!r} failed (exit {done.returncode}); rerun to resume")
    text = markdown(spec, row_dirs, COMMAND_OVERRIDES["table"])
    (workdir / "table.md").write_text(text + "\n")
    print("\n" + text)


def _has_field(config, override: str) -> bool:
    """Whether `config` has the field an override ``--config.a.b=value`` sets (table overrides apply to
    the rows whose config has it, e.g. LPGNet's model.hidden but not the linear baseline's)."""
    node = config
    for part in override_field(override).split("."):
        if not hasattr(node, "keys") or part not in node:
            return False
        node = node[part]
    return True


def evaluate() -> None:
    """Score a trained run again, on its own test part or on another corpus.

    The best checkpoint(s) on the test part of the run's protocol, with its report files (report.md,
    confusion matrix, training curves); with --corpus, on every utterance of another corpus instead,
    written to <workdir>/cross_corpus_<corpus>/. It works from any folder; where the run's data has moved,
    --config.data.root=PATH (or data.cache_dir, data.tfds_data_dir) says where it is now."""
    import json  # noqa: PLC0415

    from mer_jax.config import apply_overrides, load_run_config  # noqa: PLC0415
    from mer_jax.evaluation.plots import write_report_files  # noqa: PLC0415
    from mer_jax.evaluation.report import format_report  # noqa: PLC0415
    from mer_jax.inference import RELOCATABLE, evaluate_run  # noqa: PLC0415

    workdir, out = _workdir(), _workdir()
    if not (workdir / "config.json").exists():
        raise FileNotFoundError(f"{workdir}: not a trained run (no config.json)")
    config, overrides = load_run_config(workdir / "config.json"), COMMAND_OVERRIDES["evaluate"]
    apply_overrides(config, overrides, RELOCATABLE)
    if not config.data.tfds and FLAGS.corpus is None and not pathlib.Path(config.data.root).exists():
        raise FileNotFoundError(f"{config.data.root}: the run's data is not there; if it moved, say where it is now "
                                "with --config.data.root=PATH")
    corpus = None
    if FLAGS.corpus is not None:
        if FLAGS.root is None:
            raise app.UsageError("evaluate --corpus needs --root (the corpus' folder)")
        corpus = {"corpus": FLAGS.corpus, "root": FLAGS.root, "label_map": FLAGS.label_map}
        config.data.update(corpus)
        out = workdir / f"cross_corpus_{FLAGS.corpus}"
        out.mkdir(exist_ok=True)
    results = evaluate_run(workdir, corpus, overrides)
    report = format_report(results, config)
    print(report)
    if corpus:
        (out / "metrics.json").write_text(json.dumps(results, indent=2))
    written = write_report_files(out, results, config, report)
    print("wrote " + ", ".join(str(path) for path in written))


def predict() -> None:
    """Predict the emotion of one utterance, of every audio file under a folder, or of every row of a CSV.

    One utterance (--audio=FILE, --text), every audio file under --audio=FOLDER (transcripts from a .txt file
    beside each, or from --transcripts=CSV), or every row of a --manifest CSV; many go to --out (or the
    terminal) as CSV (label codes in the columns), JSON or JSON lines. --workdir is a run, an exported model
    folder or the Hub id of one."""
    from mer_jax.errors import InputError  # noqa: PLC0415
    from mer_jax.inference import EmotionRecognizer, folder_items, manifest_items  # noqa: PLC0415

    _check_format(("csv", "json", "jsonl"))
    if FLAGS.manifest is None and FLAGS.text is None and FLAGS.audio is None:
        raise app.UsageError("predict needs --audio and/or --text, or --audio=FOLDER, or --manifest")
    if FLAGS.transcripts is not None and not (FLAGS.audio and pathlib.Path(FLAGS.audio).is_dir()):
        raise app.UsageError("--transcripts goes with --audio=FOLDER")
    if FLAGS.manifest is not None:
        source, items = f"{FLAGS.manifest} (item k is row k, on line k + 1)", manifest_items(FLAGS.manifest)
    elif FLAGS.audio is not None and pathlib.Path(FLAGS.audio).is_dir():
        if FLAGS.text is not None:
            raise app.UsageError("--audio=FOLDER takes transcripts from .txt files beside the audio or "
                                 "--transcripts=CSV, not --text")
        source, items = FLAGS.audio, folder_items(FLAGS.audio, FLAGS.transcripts)
    else:
        source, items = None, None
    recognizer = EmotionRecognizer.load(_workdir())
    if items is None:
        result = recognizer.predict(FLAGS.audio, FLAGS.text or "")
        if FLAGS.format is None:
            print(f"{result['label']}  (" + ", ".join(f"{c} {p:.3f}" for c, p in result["probabilities"].items()) + ")")
        else:
            _write_predictions([result], recognizer, None)
        return
    try:
        results = recognizer.predict(items)
    except InputError as e:
        raise InputError(f"{source}: {e}") from None
    _write_predictions(results, recognizer, FLAGS.out)
    if FLAGS.out is not None:
        print(f"{len(results)} prediction(s) written to {FLAGS.out}")


def _write_predictions(results: list[dict], recognizer, out: str | None) -> None:
    """--format csv (id, readable label, label code, one probability column per label code), json or jsonl, into
    `out` (written beside it and renamed into place: a failure keeps an older file) or the terminal."""
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415
    import json  # noqa: PLC0415

    text = io.StringIO()
    fmt = FLAGS.format or "csv"
    if fmt == "csv":
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["id", "label", "code", *recognizer.label_set.classes])
        writer.writerows([r["id"], r["label"], r["code"], *(f"{r['probabilities'][name]:.6f}"
                                                              for name in recognizer.class_names)] for r in results)
    elif fmt == "json":
        text.write(json.dumps(results, indent=2) + "\n")
    else:
        text.writelines(json.dumps(r) + "\n" for r in results)
    if out is None:
        sys.stdout.write(text.getvalue())
        return
    partial = pathlib.Path(f"{out}.partial")
    partial.write_text(text.getvalue(), encoding="utf-8")
    partial.replace(out)


def _check_format(known: tuple[str, ...]) -> None:
    if FLAGS.format is not None and FLAGS.format not in known:
        raise app.UsageError(f"--format={FLAGS.format}: one of {', '.join(known)}")


def export() -> None:
    """Export a run's model as a self-contained folder (EmotionRecognizer.from_pretrained loads it).

    The folder holds the config (with the Hub's id2label), the tokenizer, safetensors weights and a model card;
    --format=savedmodel adds a TensorFlow SavedModel (TF Serving, TFLite: no JAX needed) in its savedmodel/
    folder; --push_to_hub=user/name uploads the folder to the Hugging Face Hub."""
    from mer_jax.inference import export_run, push_to_hub  # noqa: PLC0415

    _check_format(("folder", "savedmodel"))
    if FLAGS.out is None:
        raise app.UsageError("export needs --out (the folder to write)")
    out = export_run(_workdir(), FLAGS.out, FLAGS.seed_index)
    print(f"exported to {out}; load it with mer_jax.EmotionRecognizer.from_pretrained({str(out)!r})")
    if FLAGS.format == "savedmodel":
        from mer_jax.savedmodel import export_savedmodel  # noqa: PLC0415

        print(f"TensorFlow SavedModel: {export_savedmodel(out)}")
    if FLAGS.push_to_hub is not None:
        print(f"uploaded: {push_to_hub(out, FLAGS.push_to_hub)}; load it with "
              f"mer_jax.EmotionRecognizer.from_pretrained({FLAGS.push_to_hub!r})")


def serve() -> None:
    """Serve a model on a web page (record or upload speech, type its transcript) and an HTTP API.

    Needs the serve extra: pip install "mer_jax[serve]". Scripts call the API with gradio_client (docs/serving.md)."""
    from mer_jax.serve import serve as serve_model  # noqa: PLC0415

    if FLAGS.model is None:
        raise app.UsageError("serve needs --model (a run, an exported model folder or a Hub id)")
    try:
        serve_model(FLAGS.model, host=FLAGS.host, port=FLAGS.port)
    except ModuleNotFoundError as e:  # gradio, an optional extra: the install line, not a traceback
        if e.name != "gradio":
            raise
        raise app.UsageError(str(e)) from None


def attention() -> None:
    """Show where the audio frames attend in the text (the dynamic-fusion model).

    One utterance's cross-modal attention (PNG heatmaps, per-token CSV), or each class's most attended
    tokens over the run's test part (the dynamic-fusion paper's Section 5.2)."""
    from mer_jax.data.audio import SAMPLE_RATE  # noqa: PLC0415
    from mer_jax.evaluation import attention as maps  # noqa: PLC0415
    from mer_jax.inference import EmotionRecognizer  # noqa: PLC0415

    workdir = _workdir()
    if FLAGS.top_tokens:
        from mer_jax.training.experiment import load_experiment_data  # noqa: PLC0415
        from mer_jax.training.loop import prepare_fold_data  # noqa: PLC0415

        predictor = EmotionRecognizer.from_run(workdir)
        data = load_experiment_data(predictor.config)
        k = 0
        if len(data.splits) > 1:
            if not (workdir.name.startswith("fold") and workdir.name[4:].isdigit()):
                raise app.UsageError("attention --top_tokens reads one fold: pass --workdir=<run>/fold<k>")
            k = int(workdir.name[4:])
        test = prepare_fold_data(predictor.config, data, data.splits[k], workdir, write=False)
        table = maps.top_tokens_by_class(predictor, test.examples["test"])
        out = pathlib.Path(FLAGS.out or workdir / "attention")
        out.mkdir(parents=True, exist_ok=True)
        maps.write_top_tokens(table, out / "top_tokens.csv")
        for label, ranked in table.items():
            print(f"{label}: " + ", ".join(f"{t} {w:.3f}" for t, w, _ in ranked))
        print(f"wrote {out / 'top_tokens.csv'}")
        return
    if FLAGS.utterance is not None:
        from mer_jax.data.corpora import read_corpus  # noqa: PLC0415

        predictor = EmotionRecognizer.load(workdir)
        utterances, _ = read_corpus(predictor.config.data)
        found = next((u for u in utterances if u.utterance_id == FLAGS.utterance), None)
        if found is None:
            raise app.UsageError(f"no utterance {FLAGS.utterance!r} in {predictor.config.data.root}")
        item, name = (found.audio_path, found.transcript), FLAGS.utterance
    elif FLAGS.audio is not None and FLAGS.text is not None:
        predictor = EmotionRecognizer.load(workdir)
        item, name = (FLAGS.audio, FLAGS.text), pathlib.Path(FLAGS.audio).stem
    else:
        raise app.UsageError("attention needs --utterance=ID, or --audio and --text, or --top_tokens")
    result = predictor.predict(*item, attention=True)
    frame_seconds = predictor.config.features.hop_length / SAMPLE_RATE
    out = FLAGS.out or (workdir if workdir.is_dir() else pathlib.Path()) / "attention" / name  # a Hub id: here
    paths = maps.write_utterance_attention(result["attention"], result["tokens"], out, title=name,
                                           frame_seconds=frame_seconds)
    print("wrote " + ", ".join(map(str, paths)))


def demo() -> None:
    """Write the synthetic demo corpus, then train and test the fused model and its one-modality variants."""
    from mer_jax.configs import demo as demo_config  # noqa: PLC0415
    from mer_jax.data.demo import write_demo_corpus  # noqa: PLC0415
    from mer_jax.training.loop import train_and_evaluate  # noqa: PLC0415

    data = pathlib.Path(FLAGS.data)
    if not (data / "README.txt").exists():
        print(f"writing the synthetic demo corpus to {data}")
        write_demo_corpus(data)
    workdir = pathlib.Path(FLAGS.workdir or "runs/demo")
    rows = []
    for modalities in ("audio+text", "audio", "text"):
        config = demo_config.get_config()
        config.data.root = str(data)
        config.model.modalities = modalities
        results = train_and_evaluate(config, workdir / modalities.replace("+", "_"))
        rows.append((modalities, results["test"], results["folds"][0]["protocol"]))
    metrics = ("ua", "wa", "weighted_f1")
    table = ["| model | test UA | test WA | weighted F1 | expected over 5 seeds: UA / WA / weighted F1 |",
             "|---|---|---|---|---|"]
    table += [f"| dynamic fusion, {m} | " + " | ".join(f"{t[k]:.3f}" for k in metrics) + " | "
              + " / ".join("{:.3f} ± {:.3f}".format(*demo_config.EXPECTED[m][k]) for k in metrics) + " |"
              for m, t, _ in rows]
    summary = "\n".join(["Synthetic demo corpus (not IEMOCAP), 6 classes; protocol: " + rows[0][2], *table,
                          "One seed of a small corpus: expect each number within about two standard deviations "
                          "of its 5-seed mean (configs/demo.py)."])
    (workdir / "summary.md").write_text(summary + "\n")
    print("\n" + summary)
    fused = workdir / "audio_text"
    wav = next(data.glob("Session5/sentences/wav/*/*.wav"))
    print(f"\nreports: {fused}/report.md (confusion matrix, training curves), {workdir}/<variant>/report.txt; "
          f"TensorBoard: tensorboard --logdir {workdir}")
    print(f"try the fused model on one utterance:\n  mer-jax predict --workdir={fused} --audio={wav} "
          '--text="I love the new job."')


COMMANDS = {
    "demo": Command(demo, "mer-jax demo [--workdir=runs/demo] [--data=data/demo_iemocap]", ("workdir", "data"),
                    "mer-jax demo --workdir=runs/demo"),
    "train": Command(train, "mer-jax train --config=configs/x.py --workdir=runs/x [--config.section.field=value ...] "
                     "[--restart] [--distributed ...]",
                     ("config", "workdir", "restart", "distributed", "coordinator", "num_processes", "process_id",
                      "keep_host_memory"),
                     "mer-jax train --config=configs/demo.py --workdir=runs/fused --config.train.epochs=5"),
    "table": Command(table, "mer-jax table --table=NAME --workdir=runs/x [--rows=a,b] [--config.section.field=value ...]",
                     ("table", "workdir", "rows"),
                     "mer-jax table --table=lpgnet_demo --workdir=runs/lpgnet_demo_table"),
    "evaluate": Command(evaluate, "mer-jax evaluate --workdir=RUN [--config.data.root=PATH ...] "
                        "[--corpus=NAME --root=PATH --label_map=code=class,...]",
                        ("workdir", "corpus", "root", "label_map"),
                        "mer-jax evaluate --workdir=runs/demo/audio_text --corpus=emodb --root=data/emodb "
                        "--label_map=anger=ang,happiness=hap,neutral=neu,sadness=sad"),
    "predict": Command(predict, "mer-jax predict --workdir=RUN_OR_MODEL (--audio=a.wav --text=\"...\" | "
                       "--audio=FOLDER [--transcripts=t.csv] | --manifest=items.csv) [--out=FILE] "
                       "[--format=csv|json|jsonl]",
                       ("workdir", "audio", "text", "transcripts", "manifest", "out", "format"),
                       'mer-jax predict --workdir=runs/demo/audio_text --audio=hello.wav --text="I love the new job."'),
    "export": Command(export, "mer-jax export --workdir=RUN --out=DIR [--seed_index=K] [--format=folder|savedmodel] "
                      "[--push_to_hub=user/name]", ("workdir", "out", "seed_index", "format", "push_to_hub"),
                      "mer-jax export --workdir=runs/demo/audio_text --out=models/demo"),
    "serve": Command(serve, "mer-jax serve --model=RUN_OR_MODEL [--host=127.0.0.1] [--port=7860]",
                     ("model", "host", "port"), "mer-jax serve --model=models/demo"),
    "attention": Command(attention, "mer-jax attention --workdir=RUN_OR_MODEL (--utterance=ID | --audio=a.wav --text=\"...\" | "
                         "--top_tokens) [--out=DIR]", ("workdir", "utterance", "audio", "text", "top_tokens", "out"),
                         "mer-jax attention --workdir=runs/demo/audio_text --top_tokens"),
    "configs": Command(configs, "mer-jax configs", (), "mer-jax configs"),
    "config": Command(config, "mer-jax config --config=NAME_OR_FILE [--config.section.field=value ...]", ("config",),
                      "mer-jax config --config=configs/demo.py --config.train.epochs=5"),
    "prepare": Command(prepare, "mer-jax prepare --config=configs/x.py [--config.section.field=value ...]",
                       ("config",), "mer-jax prepare --config=configs/dynamic_fusion_iemocap.py "
                       "--config.data.root=/data/IEMOCAP_full_release"),
}


def run() -> None:
    """Console entry point."""
    if hasattr(signal, "SIGPIPE"):  # `mer-jax config ... | head` stops quietly when head has read enough
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
