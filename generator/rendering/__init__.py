"""Records to pages: Markdown and HTML from Jinja2 templates, figures as inline SVG. Rendering reads
records and nothing else, so re-rendering loads no engine."""
