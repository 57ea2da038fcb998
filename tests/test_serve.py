"""`mer_jax.serve`: the page in a real browser (Debian's headless chromium through selenium), the HTTP API
through `gradio_client`, both checked against `EmotionRecognizer.predict` on the same input; bad uploads
refused with their reason while the server goes on; the batcher's batches, with a planted slow model.

One server for the module (the tiny exported fused model, `demo_model`), on 127.0.0.1 only; no analytics,
no share link: nothing leaves the machine.
"""

import concurrent.futures
import glob
import os
import re
import socket
import sys
import threading
import time

import numpy as np
import pytest
import soundfile
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mer_jax.errors import InputError
from mer_jax.inference import EmotionRecognizer
from mer_jax.serve import Batcher, serve

CHROMEDRIVER, CHROMIUM = "/usr/bin/chromedriver", "/usr/bin/chromium"
TRANSCRIPT = "I cannot believe you did that again!"
HEARD = "what speech to text heard"  # the planted transcriber's answer, which the page must prefill


@pytest.fixture(scope="module")
def server(demo_model, tmp_path_factory):
    """The URL of `serve(demo_model)` on a free port, with a planted speech-to-text."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app = serve(demo_model, port=port, block=False, transcribe=lambda audio: HEARD)
        yield f"http://127.0.0.1:{port}/"
        app.close()


@pytest.fixture(scope="module")
def recognizer(demo_model):
    """The oracle: the same exported model, loaded on its own, scoring one utterance at a time."""
    return EmotionRecognizer.from_pretrained(demo_model)


@pytest.fixture(scope="module")
def wavs(demo_root):
    return sorted(glob.glob(str(demo_root / "Session*" / "sentences" / "wav" / "*" / "*.wav")))


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def assert_same_answer(answer: dict, expected: dict, tolerance=1e-6):
    assert answer["label"] == expected["label"]
    assert answer["code"] == expected["code"]
    assert answer["probabilities"] == pytest.approx(expected["probabilities"], abs=tolerance)
    assert list(answer["probabilities"]) == list(expected["probabilities"])  # readable names, in class order


def test_page_in_a_browser(server, recognizer, wavs, tmp_path):
    """Upload, prefilled transcript retyped, submit: the page shows the oracle's label, probabilities and the
    attention heatmap; a file that is not audio gets its reason on the page (no traceback) and clears them."""
    if not (os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM)):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(server)
        wait.until(lambda d: d.find_elements(By.ID, "submit"))
        about = driver.find_element(By.TAG_NAME, "body").text
        assert "A transcript is required" in about
        assert all(name in about for name in recognizer.class_names)

        driver.find_element(By.CSS_SELECTOR, "#audio input[type=file]").send_keys(wavs[0])
        box = driver.find_element(By.CSS_SELECTOR, "#transcript textarea")
        wait.until(lambda d: box.get_attribute("value") == HEARD)
        box.clear()
        box.send_keys(TRANSCRIPT)
        driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#attention img"))

        expected = recognizer.predict(wavs[0], TRANSCRIPT)
        label = driver.find_element(By.CSS_SELECTOR, "#probabilities [data-testid=label-output-value]").text
        shown = {bar.get_attribute("aria-label"): float(bar.get_attribute("value"))
                 for bar in driver.find_elements(By.CSS_SELECTOR, "#probabilities meter")}
        assert label == expected["label"]
        assert shown == pytest.approx(expected["probabilities"], abs=1e-6)
        heatmap = driver.find_element(By.CSS_SELECTOR, "#attention img")
        assert driver.execute_script("return arguments[0].naturalWidth", heatmap) > 0

        not_audio = tmp_path / "notes.wav"
        not_audio.write_text("these are my notes, not a recording")
        driver.find_element(By.CSS_SELECTOR, "#audio button[aria-label=Clear]").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#audio input[type=file]"))
        driver.find_element(By.CSS_SELECTOR, "#audio input[type=file]").send_keys(str(not_audio))
        driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]"))
        toast = driver.find_element(By.CSS_SELECTOR, "[data-testid=toast-body]").text
        assert "notes.wav: cannot decode audio" in toast and "Traceback" not in toast
        assert not driver.find_elements(By.CSS_SELECTOR, "#probabilities [data-testid=label-output-value]")
        assert not driver.find_elements(By.CSS_SELECTOR, "#attention img")
    finally:
        driver.quit()


def test_api_answers_as_predict(client, recognizer, wavs):
    answer = client.predict(handle_file(wavs[1]), TRANSCRIPT, api_name="/predict")
    assert set(answer) == {"label", "code", "probabilities"}
    assert_same_answer(answer, recognizer.predict(wavs[1], TRANSCRIPT))
    assert client.predict(handle_file(wavs[1]), api_name="/transcribe") == HEARD


def _wav(path, samples, rate=16_000, subtype="PCM_16"):
    soundfile.write(path, samples, rate, subtype=subtype)
    return str(path)


def test_bad_uploads_are_refused_and_the_server_goes_on(client, recognizer, wavs, tmp_path):
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, 16_000).astype(np.float32)
    text_file = tmp_path / "notes.wav"
    text_file.write_text("these are my notes, not a recording")
    bad = {  # upload, transcript -> what the message must say
        (str(text_file), TRANSCRIPT): r"notes\.wav: cannot decode audio",
        (_wav(tmp_path / "silent.wav", np.zeros(16_000)), TRANSCRIPT): r"silent\.wav: the audio is silent",
        (_wav(tmp_path / "short.wav", noise[:100]), TRANSCRIPT): r"short\.wav: 100 samples .* shorter than one 25 ms",
        (_wav(tmp_path / "nan.wav", np.where(np.arange(16_000) == 5, np.nan, noise), subtype="FLOAT"),
         TRANSCRIPT): r"nan\.wav: 1 of 16000 audio samples are NaN or infinite",
        (_wav(tmp_path / "long.wav", np.zeros(8_000 * 600, np.int16), rate=8_000), TRANSCRIPT):
            r"long\.wav: the audio lasts 600\.0 s; this server scores at most 60 s",
        (wavs[2], "  "): r"empty transcript for .*\.wav: this model reads text",
        (None, TRANSCRIPT): r"^no audio: this model hears audio$",
    }
    for (audio, text), message in bad.items():
        with pytest.raises(AppError, match=message) as refused:
            client.predict(handle_file(audio) if audio else None, text, api_name="/predict")
        assert "Traceback" not in str(refused.value)
        assert not re.search(r"/\S*\.wav", str(refused.value))  # the upload named, not the server's copy of it
    assert_same_answer(client.predict(handle_file(wavs[2]), TRANSCRIPT, api_name="/predict"),
                       recognizer.predict(wavs[2], TRANSCRIPT))


def test_requests_at_once_each_get_their_own_answer(server, recognizer, wavs, tmp_path):
    """Eight clients at once, one with a silent file: seven answers as `predict` gives them one by one (they
    may have been scored in one padded batch), and one refusal."""
    silent = _wav(tmp_path / "silent.wav", np.zeros(16_000))
    inputs = [*wavs[3:10], silent]
    clients = [Client(server, verbose=False) for _ in inputs]
    with concurrent.futures.ThreadPoolExecutor(len(inputs)) as pool:
        answers = [pool.submit(c.predict, handle_file(audio), TRANSCRIPT, api_name="/predict")
                   for c, audio in zip(clients, inputs)]
        for audio, answer in zip(inputs[:-1], answers):
            assert_same_answer(answer.result(), recognizer.predict(audio, TRANSCRIPT), tolerance=1e-5)
        with pytest.raises(AppError, match="silent"):
            answers[-1].result()


class GatedModel:
    """A planted recognizer whose first batch waits for `gate`: the requests sent meanwhile queue up."""

    def __init__(self):
        self.batches, self.gate = [], threading.Event()

    def predict(self, items):
        self.batches.append([audio for audio, _ in items])
        self.gate.wait(30)
        if "bad" in self.batches[-1]:
            raise InputError("bad: the audio is silent")
        return [{"label": audio} for audio, _ in items]


@pytest.mark.parametrize("with_bad", [False, True])
def test_batcher_scores_waiting_requests_together(with_bad):
    model = GatedModel()
    batcher = Batcher(model, max_batch_size=3)
    names = ["a0", "a1", "bad" if with_bad else "a2", "a3", "a4"]
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        answers = []
        for k, name in enumerate(names):  # the first scored alone, then the others queued one by one, in order
            answers.append(pool.submit(batcher, name, ""))
            while (len(model.batches), batcher._waiting.qsize()) != (1, k):
                time.sleep(0.001)
        model.gate.set()
        for name, answer in zip(names, answers):
            if name == "bad":
                with pytest.raises(InputError, match="^bad: the audio is silent$"):
                    answer.result()
            else:
                assert answer.result() == {"label": name}
    if with_bad:  # the batch holding the bad input is scored again item by item
        assert model.batches == [["a0"], ["a1", "bad", "a3"], ["a1"], ["bad"], ["a3"], ["a4"]]
        assert batcher.batch_sizes == {1: 4}
    else:
        assert model.batches == [["a0"], ["a1", "a2", "a3"], ["a4"]]
        assert batcher.batch_sizes == {1: 2, 3: 1}


def test_missing_gradio_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    with pytest.raises(ModuleNotFoundError, match=re.escape('pip install "mer_jax[serve]"')):
        serve("models/none")
