"""nbgrader's feedback page, readable offline and where it matters.

nbgrader's feedback template loads MathJax from a CDN (offline, the page shows raw ``$...$``),
shows long error lines behind a horizontal scrollbar (the message that names the mistake is cut
off), and lists every test cell as "Test cell" in its table of contents. This exporter renders
the math to MathML when the page is written (browsers draw MathML themselves: no script, no
network), wraps outputs, and names each table-of-contents entry after its exercise.
``nbgrader_config.py`` makes it the exporter of ``generate_feedback`` (and so of formgrader and
``python -m course grade``).
"""

import html
import re

import latex2mathml.converter
from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbgrader import utils as nbgrader_utils

MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)
EXERCISE = re.compile(r"^#{1,6}\s+(Exercise\s+\d+\b.*?)\s*(?:\((?:design, )?\d+ points?\))?\s*$",
                      re.MULTILINE)
TOC_ENTRY = re.compile(r'<a href="#(comment-)?([^"]+)">(Test cell|Comment)</a>')
STYLE = """<style type="text/css">
/* Error messages and printed values wrap instead of hiding behind a scrollbar. */
div.output_area pre { white-space: pre-wrap; overflow-wrap: anywhere; }
math { font-size: 1.1em; }
math[display="block"] { margin: 0.6em 0; }
</style>
"""


def mathml(tex, display):
    """``tex`` as a MathML element; the TeX itself, in a code span, where it cannot be read."""
    try:
        return latex2mathml.converter.convert(tex, display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - a formula the converter cannot read stays readable
        return f"<code>{html.escape(tex)}</code>"


class MathMLRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer, with math written as MathML instead of left to MathJax."""

    def block_math(self, body):
        return mathml(body, display=True)

    def inline_math(self, body):
        return mathml(body, display=False)

    def latex_environment(self, name, body):
        return mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)


def exercise_labels(nb):
    """``{grade_id: label}`` of the graded and commented cells: the heading of the exercise
    they belong to (``Exercise 2: vmap_mjp``), or the grade id outside any exercise."""
    labels, heading = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = EXERCISE.findall(cell.source)
            heading = found[-1].replace("`", "") if found else heading
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id and (nbgrader_utils.is_grade(cell) or nbgrader_utils.is_solution(cell)):
            labels[grade_id] = heading or grade_id
    return labels


class FeedbackExporter(HTMLExporter):
    """HTML of nbgrader's ``feedback`` template, with math as MathML, no script from a CDN,
    wrapped outputs and named table-of-contents entries."""

    @pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = MathMLRenderer(
            escape=False, attachments=cell.get("attachments", {}), embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
        return MarkdownWithMath(renderer=renderer).render(source)

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(nb, resources, **kw)
        labels = exercise_labels(nb)

        def named(match):
            comment, grade_id, _ = match.groups()
            label = html.escape(labels.get(grade_id, grade_id))
            text = f"{label} (comment on your answer)" if comment else label
            return f'<a href="#{comment or ""}{grade_id}">{text}</a>'

        output = TOC_ENTRY.sub(named, MATHJAX.sub("", output))
        return output.replace("</head>", STYLE + "</head>", 1), resources
