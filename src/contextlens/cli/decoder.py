"""Commands for decoders: next (the next-token distribution), generate (streamed), chat."""

import sys

import typer

from ..analysis import decoding
from ..errors import ContextlensError
from ..metrics import check_temperature
from ..sampling import check_sampling
from .app import JSON_OPTION, app, console, emit_json, get_model, need_decoder, table
from .tour import section

DECODER_OPTION = typer.Option("smollm2", "--model", "-m", help="a decoder: catalog name or path")
TEMPERATURE = typer.Option(0.0, "--temperature", "-t", help="0 = greedy; higher = more random")


@app.command("next")
def next_token(
    text: str = typer.Argument(..., help="the text to continue"),
    k: int = typer.Option(10, "-k", help="how many candidates"),
    temperature: float = typer.Option(1.0, "--temperature", "-t", help="> 0; <1 sharpens"),
    model: str = DECODER_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """The k most likely next tokens after TEXT, with their probabilities.

    A prompt over the model's context keeps its last tokens (the most recent text), with a note."""
    check_temperature(temperature)
    m = need_decoder(model, "next")
    r = decoding.next_tokens(m, text, k, temperature, truncate=True)
    if as_json:
        return emit_json(r)
    table(
        f"next token after {text!r} ({r.model}, T={temperature})",
        ["#", "token", "probability", ""],
        [
            (i, repr(c.text), f"{c.p:.4f}", "█" * round(c.p * 40))
            for i, c in enumerate(r.candidates, 1)
        ],
        {"#": "right", "probability": "right"},
    )


def _generation_options(
    n: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int | None,
    stop: list[str] | None,
) -> dict:
    check_sampling(temperature, top_k, top_p, seed)
    return dict(
        max_new_tokens=n,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        seed=seed,
        stop=stop or None,
        truncate=True,
    )


N_OPTION = typer.Option(64, "-n", "--max-new-tokens", help="at most this many new tokens")
TOP_K = typer.Option(None, "--top-k", help="sample only from the k most likely tokens")
TOP_P = typer.Option(None, "--top-p", help="sample from the smallest set with this much mass")
SEED = typer.Option(None, "--seed", help="make sampling repeatable")
STOP = typer.Option(None, "--stop", help="end before this text (repeatable)")


@app.command()
def generate(
    text: str = typer.Argument(..., help="the prompt"),
    n: int = N_OPTION,
    temperature: float = TEMPERATURE,
    top_k: int | None = TOP_K,
    top_p: float | None = TOP_P,
    seed: int | None = SEED,
    stop: list[str] | None = STOP,
    model: str = DECODER_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Continue TEXT, streaming the new text as it is generated (KV cache, one token a step).

    A prompt that leaves no room for -n new tokens keeps its last tokens, with a note."""
    opts = _generation_options(n, temperature, top_k, top_p, seed, stop)
    m = need_decoder(model, "generate")
    m.check_new_tokens(n)
    if as_json:
        r = decoding.Generation(m.name, text, **opts, text=m.generate(text, **opts))
        return emit_json(r)
    for piece in m.stream(text, **opts):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


@app.command()
def chat(
    message: str | None = typer.Option(None, "--message", help="one message, one reply, exit"),
    system: str | None = typer.Option(None, "--system", help="a system prompt"),
    n: int = typer.Option(256, "-n", "--max-new-tokens", help="at most this many new tokens"),
    temperature: float = TEMPERATURE,
    top_k: int | None = TOP_K,
    top_p: float | None = TOP_P,
    seed: int | None = SEED,
    model: str = DECODER_OPTION,
    show_prompt: bool = typer.Option(False, "--show-prompt", help="print the templated prompt"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Talk to an instruction-tuned decoder with its own chat template (interactive, or one-shot
    with --message). Type an empty line or Ctrl-D to leave.

    A conversation that outgrows the model's context keeps its last tokens, with a note."""
    opts = _generation_options(n, temperature, top_k, top_p, seed, None)
    m = need_decoder(model, "chat")
    m.check_new_tokens(n)
    history = [{"role": "system", "content": system}] if system else []

    def reply(text: str) -> str:
        history.append({"role": "user", "content": text})
        prompt = m.chat_prompt(history)
        if show_prompt:
            console.print(prompt, markup=False, style="dim")
        pieces = []
        for piece in m.stream(prompt, **opts):
            pieces.append(piece)
            if not as_json:
                sys.stdout.write(piece)
                sys.stdout.flush()
        if not as_json:
            sys.stdout.write("\n")
        history.append({"role": "assistant", "content": "".join(pieces)})
        return "".join(pieces)

    if message is not None:
        text = reply(message)
        if as_json:
            emit_json(decoding.Chat(m.name, history, text))
        return
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        except UnicodeDecodeError as e:
            raise ContextlensError(
                f"the input is not valid UTF-8 (byte 0x{e.object[e.start]:02x}); give UTF-8 "
                "text, e.g. convert it with iconv -t UTF-8"
            ) from None
        if not line:
            break
        sys.stdout.write(f"{m.name}> ")
        reply(line)


@section(50, "The last vector predicts the next token (smollm2)")
def tour_next() -> None:
    """A decoder's final hidden state at the last position goes through the LM head
    (here the embedding matrix again, tied) and a softmax over the whole vocabulary."""
    m = get_model("smollm2")
    prompt = "The capital of France is"
    for s, p in m.next_token_probs(prompt, k=5):
        console.print(f"  {p:6.1%}  {s!r}  {'█' * round(p * 40)}", markup=False)
    console.print(
        f"greedy continuation: {prompt!r} → {m.generate(prompt, max_new_tokens=12)!r}", markup=False
    )
