"""One self-contained HTML file: inline CSS, images as base64 PNG data URIs, no external
resources (opens without network). Sections have stable ids (SECTIONS); a section without data
in the given runs says so in one line. A tiny inline script records, after load, how many
images decoded and which sections exist as attributes of <body> (data-images-total,
data-images-decoded, data-sections), for headless browser checks.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from crossgen.report import figures, tables
from crossgen.report.embed import img_tag, png_bytes
from crossgen.report.findings import HELD, NOT_HELD, accuracy_observations, findings, metric_finding, notes
from crossgen.report.runs import RunData, experiments, fmt_weight

SECTIONS = [
    ("config", "Runs"),
    ("findings", "Findings"),
    ("tables", "Tables"),
    ("losses", "Losses"),
    ("similarity", "Similarity"),
    ("pca", "PCA"),
    ("homogenization", "Homogenization"),
    ("semantic", "Semantic distance"),
    ("accuracy", "Task accuracy"),
    ("diversity", "Lexical diversity"),
    ("vendi", "Embedding diversity"),
    ("realtext", "Distance to real text"),
    ("theory", "Theory"),
]

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #ffffff; --panel: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
header { padding: 22px 32px 14px; border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 32px; display: flex; flex-wrap: wrap; gap: 4px 18px; }
nav a { color: #2251a3; text-decoration: none; font-size: 14px; }
nav a:hover { text-decoration: underline; }
main { max-width: 1180px; padding: 8px 32px 48px; }
section { padding-top: 10px; border-bottom: 1px solid var(--line); padding-bottom: 18px; }
h2 { font-size: 20px; margin: 18px 0 8px; }
h3 { font-size: 16px; margin: 16px 0 6px; color: #2b3445; }
p.empty { color: var(--muted); font-style: italic; }
p.note, p.legend, p.caption { color: var(--muted); font-size: 13px; margin: 4px 0; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: left; vertical-align: top; }
thead th { background: var(--panel); }
table.change td { font-variant-numeric: tabular-nums; white-space: nowrap; }
table.change caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
th.group { text-align: center; }
td.increase, .swatch.increase { background: #f9d3cf; }
td.decrease, .swatch.decrease { background: #cfe9d2; }
td.constant, .swatch.constant { background: #e6e8ec; }
td.missing { color: var(--muted); }
table.better-higher td.increase, .better-higher .swatch.increase { background: #cfe9d2; }
table.better-higher td.decrease, .better-higher .swatch.decrease { background: #f9d3cf; }
.swatch { padding: 1px 7px; border-radius: 3px; margin-right: 6px; color: var(--fg); }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; border: 1px solid var(--line); }
ul.findings { list-style: none; padding: 0; }
ul.findings li { margin: 8px 0; padding: 8px 12px; background: var(--panel); border-left: 4px solid #9aa3b2; }
ul.findings li.held { border-left-color: #2e8b47; }
ul.findings li.not-held { border-left-color: #c0392b; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; padding: 1px 8px; border-radius: 10px;
         margin-right: 8px; color: #fff; background: #8a93a3; }
.badge.held { background: #2e8b47; } .badge.not-held { background: #c0392b; }
details { margin: 6px 0; } summary { cursor: pointer; color: #2251a3; }
pre { background: var(--panel); padding: 10px; overflow-x: auto; font-size: 12.5px; border: 1px solid var(--line); }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var decoded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var ids = Array.prototype.map.call(document.querySelectorAll('section[id]'), function (s) { return s.id; });
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-decoded', String(decoded));
  document.body.setAttribute('data-sections', ids.join(' '));
});
"""

e = html.escape


def _figure(fig, alt: str) -> str:
    return img_tag(png_bytes(fig), alt) if fig is not None else ""


def _empty(text: str) -> str:
    return f'<p class="empty">{e(text)}</p>'


def _per_experiment(groups: list[list[RunData]], body: Callable[[list[RunData]], str]) -> list[str]:
    parts = []
    for runs in groups:
        content = body(runs)
        if content and len(groups) > 1:
            r = runs[0]
            content = f"<h3>K = {r.K}: {e(', '.join(r.entities))}</h3>\n" + content
        if content:
            parts.append(content)
    return parts


# -- sections -----------------------------------------------------------------------------
def section_config(runs: list[RunData]) -> str:
    head = [
        "run",
        "directory",
        "model",
        "K: entity (task)",
        "public",
        "α",
        "β",
        "T",
        "updates",
        "complete",
        "mixing",
        "seed",
    ]
    rows = []
    for r in runs:
        cfg = r.cfg
        model = cfg.model.backend + ": " + (cfg.model.name_or_path or ("scratch GPT-2" if cfg.model.scratch else ""))
        if cfg.model.backend == "linear" and cfg.model.linear is not None:
            lin = cfg.model.linear
            model = "linear: " + (
                f"features {lin.features}" if lin.features else f"d = {lin.d}, rank {lin.rank}, σ² = {lin.sigma2:g}"
            )
        elif cfg.model.scratch is not None:
            s = cfg.model.scratch
            model += f" ({s.n_layer} layers, width {s.n_embd})"
        own = [en.name for en in cfg.entities if en.model is not None]
        if own:  # entities with their own model: config.yaml below has the details
            model += f"; own model: {', '.join(own)}"
        ents = "; ".join(f"{en.name} ({en.task.name})" for en in cfg.entities)
        alpha = fmt_weight(r.alpha) if r.alpha is not None else str(cfg.alpha)
        beta = fmt_weight(r.beta) if r.beta is not None else str(cfg.beta)
        done = f"{len(r.generations)}/{cfg.generations + 1} ({r.manifest.get('status', '?')})"
        cells = [
            cfg.name,
            str(r.path),
            model,
            f"{cfg.K}: {ents}",
            cfg.public.name,
            alpha,
            beta,
            str(cfg.generations),
            _updates(cfg),
            done,
            f"{cfg.mixing.paradigm}, n = {cfg.mixing.n}",
            str(cfg.seed),
        ]
        rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    out = [
        "<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>",
        *rows,
        "</tbody></table>",
    ]
    for r in runs:
        text = (r.path / "config.yaml").read_text()
        out.append(
            f"<details><summary>config.yaml of {e(r.name)} ({e(str(r.path))})</summary>"
            f"<pre><code>{e(text)}</code></pre></details>"
        )
    return "\n".join(out)


def _updates(cfg) -> str:
    """Optimizer steps of generation 0 and of each later generation (what was trained)."""
    first, later = cfg.training_for(0), cfg.training

    def steps(tc) -> str:
        return f"{tc.max_steps} steps × {tc.per_device_train_batch_size * tc.gradient_accumulation_steps}"

    return f"generation 0: {steps(first)}; then {steps(later)} per generation"


def section_findings(runs: list[RunData]) -> str:
    items = []
    for f in findings(runs):
        cls = "held" if f.status == HELD else ("not-held" if f.status == NOT_HELD else "untestable")
        ctx = f" ({e(f.context)})" if f.context else ""
        items.append(
            f'<li class="{cls}"><span class="badge {cls}">{e(f.status)}</span>'
            f"<strong>Claim {f.claim}: {e(f.title)}</strong>{ctx}<br>{e(f.text)}</li>"
        )
    out = ['<ul class="findings">', *items, "</ul>"]
    out += [f'<p class="note">{e(n)}</p>' for n in notes(runs)]
    out.append(
        '<p class="note">Initial = generation 0, final = the last complete generation; a loss change counts '
        "when |final − initial| &gt; 0.1. Replicate runs of one (α, β) are averaged.</p>"
    )
    return "\n".join(out)


def section_tables(runs_groups: list[list[RunData]]) -> str:
    def body(runs: list[RunData]) -> str:
        parts = []
        # with differing tokenizers entities compare on bits per byte: that table comes first
        bpb = tables.bits_per_byte_table(runs)
        losses = [t for t in (tables.loss_table(runs), bpb) if t is not None and t.rows]
        if runs[0].tokenizers_differ:
            losses.reverse()
        parts += [tables.to_html(t) for t in losses]
        sim = tables.similarity_table(runs)
        if sim is not None and sim.rows:
            parts.append(tables.to_html(sim))
        if not parts:
            return ""
        md = "\n".join(tables.to_markdown(t) for t in [*losses, *([sim] if sim is not None else [])])
        parts.append(f"<details><summary>Markdown</summary><pre><code>{e(md)}</code></pre></details>")
        parts += [_pool_counts(run) for run in runs if any(run.cfg.filters_for(k) for k in range(run.K))]
        return "\n".join(parts)

    parts = _per_experiment(runs_groups, body)
    return "\n".join(parts) if parts else _empty("No losses in these runs yet.")


def _pool_counts(run: RunData) -> str:
    """A filtered run's pools: completions kept / generated, per generation (row) and pool."""
    import pandas as pd

    path = run.path / "pool_counts.csv"
    if not path.is_file():
        return ""
    counts = pd.read_csv(path)
    pools = list(dict.fromkeys(counts["entity"]))
    head = "".join(f"<th>{e(p)}</th>" for p in pools)
    rows = []
    for t, frame in counts.groupby("generation", sort=True):
        by = {r.entity: f"{r.kept} / {r.generated}" for r in frame.itertuples()}
        rows.append(f"<tr><td>{t}</td>" + "".join(f"<td>{by.get(p, '')}</td>" for p in pools) + "</tr>")
    return (
        f"<table><caption>Pool filters of {e(run.name)}: completions kept / generated, per generation and "
        f"pool</caption><tr><th>generation</th>{head}</tr>{''.join(rows)}</table>"
    )


def section_figure(runs_groups, make, alt: str, missing: str, caption: str = "") -> str:
    def body(runs):
        fig = make(runs)
        if fig is None:
            return ""
        return _figure(fig, alt) + (f'<p class="caption">{e(caption)}</p>' if caption else "")

    parts = _per_experiment(runs_groups, body)
    return "\n".join(parts) if parts else _empty(missing)


def section_pca(runs_groups) -> str:
    def body(runs):
        data = figures.pca_panels(runs)
        if data is None:
            return ""
        ev = data.pca.explained
        cap = (
            f"One PCA fitted on all {data.n_fitted} completion embeddings of every run and generation shown here "
            f"(PC1 {100 * ev[0]:.0f}%, PC2 {100 * ev[1]:.0f}% of the variance), "
            "so points are comparable across panels. "
            f"The paper's Figure 3: at α = 0.5 the task clusters stay apart."
        )
        return _figure(figures.pca_figure(data), "PCA of output embeddings") + f'<p class="caption">{e(cap)}</p>'

    parts = _per_experiment(runs_groups, body)
    return "\n".join(parts) if parts else _empty(NO_EMBEDDINGS)


NO_METRICS = (
    "No completion metrics in these runs yet (gen_NNN/metrics/<family>.csv): `crossgen metrics RUN_DIR` "
    "computes them from the saved completions and embeddings."
)

# (metric, label, what a higher value means) stated as a finding in each section
SECTION_FINDINGS = {
    "diversity": [
        ("distinct_2", "Distinct-2", "more diverse"),
        ("self_bleu", "Self-BLEU", "more alike, less diverse"),
    ],
    "vendi": [("vendi", "Vendi score per model", "more diverse")],
    "realtext": [
        ("mauve", "MAUVE", "closer to the real text"),
        ("coverage", "Coverage", "more of the real text covered"),
    ],
}


def section_metric(runs_groups, section: str, make, alt: str, caption: str, runs: list[RunData]) -> str:
    """A completion-metric section: its figure per experiment and a finding computed from the data."""
    figure = section_figure(runs_groups, make, alt, NO_METRICS, caption)
    items = [
        text
        for metric, label, higher in SECTION_FINDINGS[section]
        for text in metric_finding(runs, metric, label, higher)
    ]
    if items:
        figure = '<ul class="findings">' + "".join(f"<li>{e(t)}</li>" for t in items) + "</ul>\n" + figure
    elif '<p class="empty">' not in figure:
        figure = (
            '<p class="note">No finding: it needs an α = 0 run and an α &gt; 0 run with this metric at a '
            "generation after 0.</p>\n" + figure
        )
    has_mauve = any("mauve" in set(r.table("metrics").get("metric", ())) for r in runs)
    if section == "realtext" and not has_mauve:
        figure += (
            '<p class="note">MAUVE was not computed: the mauve-text package is not installed '
            "(pip install 'crossgen[mauve]', then crossgen metrics RUN_DIR --only mauve).</p>"
        )
    return figure


NO_ACCURACY = (
    "No task accuracy in these runs (gen_NNN/metrics/accuracy.csv: text backends with evaluation.accuracy, "
    "written while each generation is evaluated)."
)


def section_accuracy(runs_groups: list[list[RunData]], runs: list[RunData]) -> str:
    """The accuracy change table and figure per experiment, with the α = 0.5 observation."""

    def body(group: list[RunData]) -> str:
        table = tables.accuracy_table(group)
        if table is None or not table.rows:
            return ""
        md = tables.to_markdown(table)
        figure = _figure(figures.accuracy_figure(group), "task accuracy per generation")
        return (
            tables.to_html(table)
            + f"\n<details><summary>Markdown</summary><pre><code>{e(md)}</code></pre></details>\n"
            + figure
        )

    parts = _per_experiment(runs_groups, body)
    if not parts:
        return _empty(NO_ACCURACY)
    items = []
    for o in accuracy_observations(runs):
        cls = "held" if o.status == HELD else ("not-held" if o.status == NOT_HELD else "untestable")
        items.append(
            f'<li class="{cls}"><span class="badge {cls}">{e(o.status)}</span>'
            f"<strong>With α = 0.5, accuracy on the other models' tasks rises while lexical diversity falls"
            f"</strong><br>{e(o.text)}</li>"
        )
    head = '<ul class="findings">' + "".join(items) + "</ul>\n" if items else ""
    return head + "\n".join(parts)


NO_EMBEDDINGS = (
    "No embeddings in these runs (evaluation.embedding_prompts was 0, the linear backend, "
    "or the metrics hook did not run)."
)


def section_theory(runs_groups, theory_dir: Optional[Path]) -> str:
    parts = []
    for name, caption in (
        ("figure2.png", "Figure 2: predicted relative efficiency across α, β."),
        ("figure4.png", "Figure 4: predicted MSE per generation for K = 2 at varying α, β."),
    ):
        if theory_dir is not None and (Path(theory_dir) / name).is_file():
            parts.append(
                img_tag((Path(theory_dir) / name).read_bytes(), caption) + f'<p class="caption">{e(caption)}</p>'
            )
    parts += _graphs_part(theory_dir)
    parts += _per_experiment(
        runs_groups, lambda runs: _figure(figures.theory_figure(runs), "linear runs over the theory")
    )
    if parts:
        return "\n".join(parts)
    if any(r.backend == "linear" for g in runs_groups for r in g):
        return _empty("The theory package is not available, so the linear runs are shown without the prediction.")
    return _empty("No theory figures: no --theory-dir was given and no run uses the linear backend.")


def _graphs_part(theory_dir: Optional[Path]) -> list[str]:
    """The interaction-graph figure (`crossgen theory figure-graphs`) with the finding read off
    its graphs.csv, when the theory directory holds them."""
    png = None if theory_dir is None else Path(theory_dir) / "graphs.png"
    if png is None or not png.is_file():
        return []
    caption = "Interaction graphs (theory and Monte Carlo; not in the paper): MSE, limit and homogenization per graph."
    part = img_tag(png.read_bytes(), caption) + f'<p class="caption">{e(caption)}</p>'
    table = png.with_name("graphs.csv")
    if table.is_file():
        import pandas as pd

        from crossgen.theory.figures import graphs_finding

        part += f'<p class="finding">{e(graphs_finding(pd.read_csv(table)))}</p>'
    return [part]


# -- page -----------------------------------------------------------------------------------
def render_report(runs: list[RunData], theory_dir: Optional[Path] = None) -> str:
    groups = experiments(runs)
    bodies = {
        "config": section_config(runs),
        "findings": section_findings(runs),
        "tables": section_tables(groups),
        "losses": section_figure(
            groups,
            figures.loss_figure,
            "loss per generation",
            "No losses in these runs yet.",
            "As the paper's Figures 5-7: one panel per α; colour = model.",
        ),
        "similarity": section_figure(
            groups,
            figures.similarity_figure,
            "similarity per generation",
            NO_EMBEDDINGS,
            "Mean over prompts of the cosine between two models' completions of the same prompt "
            "(Table 3's measure), averaged over model pairs.",
        ),
        "pca": section_pca(groups),
        "homogenization": section_figure(
            groups,
            figures.homogenization_figure,
            "homogenization per generation",
            NO_EMBEDDINGS,
            "Spread: mean squared distance of the K models' embeddings to their centroid, per prompt, "
            "averaged over prompts (0 = identical outputs). Diversity: 1 − mean cosine between one "
            "model's completions of different prompts (0 = the same answer to everything).",
        ),
        "semantic": section_figure(
            groups,
            figures.semantic_figure,
            "semantic distance per generation",
            NO_EMBEDDINGS,
            "Mean over prompts of 1 − cos(embedding of the answer, embedding of the correct answer).",
        ),
        "accuracy": section_accuracy(groups, runs),
        "diversity": section_metric(
            groups,
            "diversity",
            figures.lexical_figure,
            "lexical diversity per generation",
            "Per model and dataset, over the completions of the first test prompts (13a tokens): distinct-n = "
            "distinct n-grams / n-gram occurrences; compression ratio = text bytes / gzip bytes; self-BLEU = mean "
            "sentence BLEU of each completion against the others. Lines: mean over models; bands: their 95% "
            "intervals over prompts, averaged (docs/metrics.md); dotted: the reference answers.",
            runs,
        ),
        "vendi": section_metric(
            groups,
            "vendi",
            figures.vendi_figure,
            "Vendi score per generation",
            "exp of the entropy of the eigenvalues of K/n, K the cosine similarities of the completions' "
            "embeddings: 1 = one answer repeated, n = all different. Top: each model (mean over models); bottom: "
            "every model's completions pooled. Bands: 95% bootstrap intervals over prompts; dotted: the "
            "reference answers.",
            runs,
        ),
        "realtext": section_metric(
            groups,
            "realtext",
            figures.real_text_figure,
            "distance to real text per generation",
            "Completions against the reference answers of the same prompts, on their embeddings: MAUVE "
            "(mauve-text, mean over 3 k-means seeds; band = their range) and k-NN precision, recall, coverage "
            "(k = 5; bands = 95% bootstrap intervals over prompts). Mean over models.",
            runs,
        ),
        "theory": section_theory(groups, theory_dir),
    }
    names = ", ".join(r.name for r in runs)
    try:
        from importlib.metadata import version

        ver = version("crossgen")
    except Exception:
        ver = "?"
    plural = "s" if len(runs) != 1 else ""
    generated = time.strftime("%Y-%m-%d %H:%M")
    nav = "".join(f'<a href="#{sid}">{e(title)}</a>' for sid, title in SECTIONS)
    sections = "\n".join(
        f'<section id="{sid}">\n<h2>{e(title)}</h2>\n{bodies[sid]}\n</section>' for sid, title in SECTIONS
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crossgen report: {e(names)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>crossgen report</h1>
<p>{len(runs)} run{plural}: {e(names)} · generated {e(generated)} · crossgen {e(ver)}</p>
</header>
<nav>{nav}</nav>
<main>
{sections}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
