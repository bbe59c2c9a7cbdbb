"""`gradscope classes [QUERY] [--model M]`: list a model's classes, or those whose name, synonyms
or wnid contain QUERY; and `resolve_class_arg`, which the commands use for a class given on the
command line (an unknown one names the classes that contain it, close spellings, and the other
shipped model when that one has it)."""
from __future__ import annotations

from gradscope.cli.common import add_json_arg
from gradscope.cli.output import emit, envelope
from gradscope.errors import UnknownClassError
from gradscope.modelspec import DEFAULT_MODEL, SHIPPED_MODELS

EXIT_NO_MATCH = 1


def register(subparsers) -> None:
    p = subparsers.add_parser("classes", help="list or search a model's classes (names, synonyms, wnids)",
                              description="Lists the classes of a model, or those whose name, synonyms or wnid "
                                          "contain QUERY (case-insensitive). Exits 1 when none does.")
    p.add_argument("query", nargs="?", default=None, metavar="QUERY",
                   help="text to search for, e.g. 'cat' or 'n02123045' (default: list every class)")
    p.add_argument("--model", metavar="SPEC", default=DEFAULT_MODEL,
                   help="model: " + ", ".join(f"'{m.spec}' ({m.name})" for m in SHIPPED_MODELS)
                        + f" or any --model spec of the other commands (default {DEFAULT_MODEL})")
    add_json_arg(p)
    p.set_defaults(func=run_classes)


def model_classes(spec):
    """(wnids, names, info) of a model spec; shipped models without loading their weights."""
    from gradscope.modelspec import class_list, describe_model, load_image_model, shipped_model

    shipped = shipped_model(spec)
    if shipped is not None:
        wnids, names = class_list(spec)
        info = {"name": shipped.name, "spec": shipped.spec, "dataset": shipped.dataset, "classes": len(names),
                "input_size": shipped.input_size}
        return wnids, names, info
    model = load_image_model(spec)
    return list(model.wnids), list(model.class_names), describe_model(model, spec)


def other_models_with(spec, query) -> str:
    """'; TinyImageNet CNN has it: 'golden retriever' (--model tinyimagenet)' for each other shipped
    model with a class that is or contains `query` (or '')."""
    from gradscope.interface import find_classes
    from gradscope.modelspec import class_list, shipped_model

    mine = shipped_model(spec)
    hints = []
    for m in SHIPPED_MODELS:
        if mine is not None and m.spec == mine.spec:
            continue
        wnids, names = class_list(m.spec)
        found = find_classes(names, wnids, query)
        if found:
            shown = ", ".join(repr(names[i]) for i in found[:3])
            hints.append(f"{m.name} has {shown} (--model {m.spec})")
    return "".join(f"; {h}" for h in hints)


def resolve_class_arg(model, spec, query) -> int:
    """resolve_class(model, query); an unknown class's error also names the other shipped models
    that have it."""
    from gradscope.interface import resolve_class

    try:
        return resolve_class(model, query)
    except UnknownClassError as e:
        hint = (other_models_with(spec, query)
                if isinstance(query, str) and query.strip() and not query.strip().isdigit() else "")
        raise UnknownClassError(f"{e}{hint}; see `gradscope classes QUERY --model M`") from None


def run_classes(args) -> int:
    from gradscope.interface import close_class_names, find_classes

    wnids, names, info = model_classes(args.model)
    found = list(range(len(names))) if args.query is None else find_classes(names, wnids, args.query)
    records = [{"class": i, "class_name": str(names[i]), "wnid": str(wnids[i])} for i in found]
    if args.query is None:
        lines = [f"{len(names)} classes:"]
    elif found:
        lines = [f"{len(found)} of {len(names)} classes contain {args.query!r}:"]
    else:
        close = close_class_names(names, args.query)
        lines = [f"no class contains {args.query!r}"
                 + (f"; close spellings: {', '.join(repr(c) for c in close)}" if close else "")
                 + other_models_with(args.model, args.query)]
    lines += [f"  {r['class']:>4}  {r['wnid']}  {r['class_name']}" for r in records]
    emit(args, envelope("classes", info, records, query=args.query), lines)
    return 0 if found else EXIT_NO_MATCH
