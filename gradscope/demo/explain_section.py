"""Demo section "Why each word": word-level caption saliency of the first photo's caption
(gradscope.captioning.explain) with its deletion check."""
from __future__ import annotations

from gradscope.demo.section import Section, Table, Visual
from gradscope.errors import GradscopeError

__all__ = ["explain_words", "DESCRIPTION"]

DESCRIPTION = ("For each word of the shipped captioner's caption (beam search, as `gradscope caption IMAGE`), "
               "the gradient of log p(word | image, words before) with respect to the pixels, through the "
               "captioner and the CNN by their hand-written backward passes; the map is its contribution: "
               "gradient x (pixel - mean pixel) summed over colour channels, the first-order estimate of the "
               "log-prob's fall when the pixel takes the mean. Deletion check: the fall of the word's log-prob "
               "when the top 10% of pixels by its map, or a random 10%, take the mean pixel.")


def explain_words(ctx, callback) -> Section:
    """The section for the demo runner's context (photos, models, settings, seed)."""
    from gradscope.captioning.explain import explain_caption
    from gradscope.captioning.explain_figures import caption_strip
    from gradscope.captioning.features import feature_fn_for

    captioner = ctx.models.captioner
    if captioner is None:
        raise GradscopeError("skipped: the shipped captioner could not be loaded (see Models)")
    extractor = feature_fn_for(captioner)
    if not hasattr(getattr(extractor, "model", None), "backward_from"):
        raise GradscopeError("skipped: the captioner's CNN has no backward pass to the pixels")
    photo = ctx.photos[0]
    result = explain_caption(captioner, extractor, photo.pixels, name=photo.name, beam=ctx.settings.beam_size,
                             max_length=ctx.settings.max_caption_length, seed=ctx.seed)
    numbers = {**result.to_dict(), "faithful_fraction": result.faithful_fraction}
    beats = int(round(result.faithful_fraction * len(result.words))) if result.words else 0
    summary = [f'{photo.name}: "{result.caption}"; top-pixel deletion lowers the word\'s log-prob more than '
               f"random deletion for {beats} of {len(result.words)} words"]
    rows = [[w["word"], f"{w['logprob']:.3f}", _fmt(w["deletion_drop_top"]), _fmt(w["deletion_drop_random"])]
            for w in numbers["words"]]
    table = Table(["word", "log p", "drop (top 10%)", "drop (random 10%)"], rows)
    visual = Visual(f"explain_{photo.name}", caption_strip(result), caption=f'"{result.caption}"')
    return Section("explain", "Why each word: caption saliency", DESCRIPTION, summary=summary, numbers=numbers,
                   visuals=[visual], tables=[table])


def _fmt(v):
    return "-" if v is None else f"{v:+.3f}"
