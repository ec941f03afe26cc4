"""Images in, batches out: the data-set registry and the checks of every data argument
(``registry``), the loaders over registered sets and image folders (``datasets``), the in-memory
loaders (``loaders``), CIFAR-10 (``cifar10``), the digits (``digits``) and the two generators
(``synthetic``, ``formulas``). :func:`~pystatsml_tl.data.datasets.load_data` is the entry point."""
