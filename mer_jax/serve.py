"""Serve a model on a web page and an HTTP API (Gradio): record or upload speech, type its transcript, read
the emotion's probabilities and, for the fused dynamic-fusion model, where its audio frames look in the text.

    serve("models/demo")                                          # http://127.0.0.1:7860 until Ctrl+C
    build_app(EmotionRecognizer.load("models/demo")).launch()     # the same page, launched as you like

    from gradio_client import Client, handle_file                 # a script calling it
    Client("http://127.0.0.1:7860").predict(handle_file("hello.wav"), "I love it", api_name="/predict")
    # -> {"label": "happiness", "code": "hap", "probabilities": {"anger": 0.01, ...}}

Requests that wait together are scored in one batch (`Batcher`): as soon as a batch is done, every request
that arrived meanwhile (at most `max_batch_size`) goes into the next, so batches grow with the load and a
lone request waits for nobody. Not Gradio's ``batch=True``: Gradio fails every request of a batch when its
function raises, so one bad upload would fail the good requests that arrived with it; here a batch holding
a bad input is scored again item by item, and only the bad item gets its error.

Gradio is imported by this module only: it is an optional extra (``pip install "mer_jax[serve]"``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import pathlib
import queue
import tempfile
import threading
from collections.abc import Callable

from mer_jax.data.audio import SAMPLE_RATE
from mer_jax.errors import InputError
from mer_jax.evaluation.attention import has_cross_attention
from mer_jax.inference import EmotionRecognizer

MAX_SECONDS = 60.0  # longer uploads are refused before decoding: one request must not hold the batch for long
MAX_BATCH_SIZE = 8  # the recognizer pads a batch to 1, 8 or 32 rows: 2 to 8 requests cost one 8-row step
MAX_FILE_SIZE = "100mb"  # Gradio refuses bigger uploads (a minute of 48 kHz stereo float is 23 MB)


def _gradio():
    """The gradio module, or an error saying how to install it."""
    try:
        import gradio  # noqa: PLC0415
    except ImportError:
        raise ModuleNotFoundError('serving needs gradio: pip install "mer_jax[serve]"', name="gradio") from None
    return gradio


class Batcher:
    """Scores (audio, transcript) requests from many threads in batches: `__call__` blocks until its
    request's answer is ready. The recognizer is called under `lock`: whoever else calls it takes the lock
    too (a tokenizer is not safe to share between threads)."""

    def __init__(self, recognizer: EmotionRecognizer, max_batch_size: int = MAX_BATCH_SIZE):
        self.recognizer, self.max_batch_size = recognizer, max_batch_size
        self.lock = threading.Lock()
        self.batch_sizes = collections.Counter()  # batch size -> batches of that size scored (benchmarks, tests)
        self._waiting: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, name="mer-jax-batcher", daemon=True).start()

    def __call__(self, audio, text: str) -> dict:
        """The recognizer's answer for one utterance; raises its `InputError` for a bad one."""
        answer = concurrent.futures.Future()
        self._waiting.put(((audio, text), answer))
        return answer.result()

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < self.max_batch_size and not self._waiting.empty():
                batch.append(self._waiting.get())
            self._score(batch)

    def _score(self, batch: list) -> None:
        """Answer every request of `batch`, scored together; with a bad input among them, each scored alone."""
        try:
            with self.lock:
                results = self.recognizer.predict([item for item, _ in batch])
        except InputError as e:
            if len(batch) == 1:
                batch[0][1].set_exception(e)
            else:
                for request in batch:
                    self._score([request])
            return
        except Exception as e:  # noqa: BLE001 (a bug: its requests fail, Gradio logs it, the server goes on)
            for _, answer in batch:
                answer.set_exception(e)
            return
        self.batch_sizes[len(batch)] += 1
        for (_, answer), result in zip(batch, results):
            answer.set_result(result)


def _check_duration(path: str, max_seconds: float) -> None:
    """Refuse a file longer than `max_seconds` from its header; an unreadable one is left for the recognizer to name."""
    import soundfile  # noqa: PLC0415

    try:
        seconds = soundfile.info(path).duration
    except (soundfile.LibsndfileError, RuntimeError, OSError):
        return
    if seconds > max_seconds:
        raise InputError(f"{path}: the audio lasts {seconds:.1f} s; this server scores at most {max_seconds:g} s "
                         "(cut it into utterances)")


def _about(recognizer: EmotionRecognizer, max_seconds: float, transcribes: bool) -> str:
    """The page's introduction: what the model reads, its classes, what to give it."""
    config, reads = recognizer.config, recognizer.modalities
    heard = " and ".join(n for m, n in (("audio", "speech"), ("text", "its transcript" if "audio" in reads else
                                                               "a transcript")) if m in reads)
    lines = [f"# Emotion recognition: {config.model.name}",
             (f"This model reads **{heard}** and says which of {len(recognizer.class_names)} emotions it "
              f"expresses: {', '.join(recognizer.class_names)}.")]
    if "audio" in reads:
        lines.append(f"Record with the microphone or upload a file (wav, flac or ogg; any sample rate; "
                     f"at most {max_seconds:g} s).")
    if "text" in reads:
        lines.append("**A transcript is required**: the model reads the words. "
                     + ("Speech-to-text fills it in when the audio arrives; correct it if needed."
                        if transcribes else "Type what is said."))
    lines.append('Scripts call the same model over HTTP: see "Use via API" at the bottom of the page.')
    return "\n\n".join(lines)


def build_app(recognizer: EmotionRecognizer, *, max_seconds: float = MAX_SECONDS,
              max_batch_size: int = MAX_BATCH_SIZE, transcribe: Callable[[str], str] | None = None):
    """The page and its API (a `gradio.Blocks`; `.launch()` serves it).

    ``/predict`` takes (audio file, transcript) and answers ``{"label", "code", "probabilities"}``
    (readable class names, the corpus' label code); a bad input (not audio, silent, NaN, shorter than one
    25 ms window, longer than `max_seconds`, no transcript for a model that reads text) is refused with
    its reason as a `gradio.Error`, shown on the page and raised by `gradio_client`. `transcribe` (an
    audio file -> its transcript) prefills the transcript box when audio arrives, and is ``/transcribe``.
    """
    gr = _gradio()
    batcher = Batcher(recognizer, max_batch_size)
    reads = recognizer.modalities
    attention = has_cross_attention(recognizer.config.model)

    def predict(audio: str | None, transcript: str) -> dict:
        """The model's answer for one utterance: its label, label code and class probabilities."""
        try:
            if audio and "audio" in reads:
                _check_duration(audio, max_seconds)
            result = batcher(audio, transcript)
        except InputError as e:  # name the upload, not the server's copy of it
            message = str(e).replace(audio, pathlib.Path(audio).name) if audio else str(e)
            raise gr.Error(message, duration=None, print_exception=False) from None
        return {"label": result["label"], "code": result["code"], "probabilities": result["probabilities"]}

    def show(answer: dict, audio: str | None, transcript: str):
        """The page's view of an answer: the probabilities as bars, and the attention heatmap."""
        if not attention:
            return answer["probabilities"]
        from PIL import Image  # noqa: PLC0415

        from mer_jax.evaluation.attention import write_utterance_attention  # noqa: PLC0415

        with batcher.lock:
            result = recognizer.predict(audio, transcript, attention=True)
        with tempfile.TemporaryDirectory() as folder:
            paths = write_utterance_attention(result["attention"], result["tokens"], folder,
                                              title=pathlib.Path(audio).stem,
                                              frame_seconds=recognizer.config.features.hop_length / SAMPLE_RATE)
            heatmap = Image.open(paths[1]).convert("RGB")  # mean.png: the heads' average
        return answer["probabilities"], heatmap

    # Uploads are kept an hour (Gradio's cache would grow as long as the server runs); no usage statistics are sent.
    with gr.Blocks(title=f"mer_jax: {recognizer.config.model.name}", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as app:
        gr.Markdown(_about(recognizer, max_seconds, transcribe is not None))
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech",
                                 visible="audio" in reads, elem_id="audio")
                transcript = gr.Textbox(label="Transcript" + (" (required)" if "text" in reads else ""), lines=2,
                                        visible="text" in reads, elem_id="transcript")
                submit = gr.Button("Recognise the emotion", variant="primary", elem_id="submit")
            with gr.Column():
                probabilities = gr.Label(num_top_classes=len(recognizer.class_names), label="Emotion",
                                         elem_id="probabilities")
                outputs = [probabilities]
                if attention:
                    outputs.append(gr.Image(label="Cross-modal attention: audio frames x text tokens, mean over "
                                                  "heads", type="pil", elem_id="attention"))
                answer = gr.JSON(label="Answer", elem_id="answer")  # what the API returns
        # The last answer is cleared first: a refused input must not stand beside an earlier result.
        # Two batches' worth of requests may wait in the batcher: the next batch fills while one is scored.
        # The page's view is drawn one request at a time: pyplot is not thread-safe.
        cleared = submit.click(lambda: [None] * (1 + len(outputs)), None, [answer, *outputs], queue=False,
                               api_visibility="private")
        answered = cleared.then(predict, [audio, transcript], answer, api_name="predict",
                                concurrency_limit=2 * max_batch_size)
        answered.success(show, [answer, audio, transcript], outputs, api_visibility="private", concurrency_limit=1)
        if transcribe is not None:
            gr.on([audio.upload, audio.stop_recording], transcribe, audio, transcript, api_name="transcribe")
    app.batcher = batcher  # its batch_sizes say how requests were batched (tests, benchmarks)
    return app


def serve(model, host: str = "127.0.0.1", port: int = 7860, *, max_seconds: float = MAX_SECONDS,
          max_batch_size: int = MAX_BATCH_SIZE, transcribe: Callable[[str], str] | None = None, block: bool = True):
    """Serve `model` (a run, an exported model folder or a Hub id: `EmotionRecognizer.load`) at http://host:port
    until interrupted; with ``block=False`` return the running app at once (``app.close()`` stops it)."""
    _gradio()  # before the model loads: a missing extra is said at once
    app = build_app(EmotionRecognizer.load(model), max_seconds=max_seconds, max_batch_size=max_batch_size,
                    transcribe=transcribe)
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, max_file_size=MAX_FILE_SIZE,
               ssr_mode=False)
    return app
