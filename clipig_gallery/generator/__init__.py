"""clipig-gallery generator: cache + article -> static site (never imports torch).

The pipeline, one module each: ``inputs`` (prompts, article, cache via
``cachedata``) -> ``parts`` (selector, heatmap, ranking table, figures) ->
``article`` (Jinja helpers, Markdown) -> ``site`` (images, pages, pruning,
link check). ``build_site`` is the entry point; ``cli`` holds the commands.
"""
