"""The style transfer function's code, one wing a folder (function/main.py is the entry point):

    contract.py  what export/ writes and this package reads: graph names, file suffix, metadata
    ops/         the process: configuration, JSON logs, memory, deadlines, admission
    imaging/     bytes to pixels and back: decode, structure checks, encode, pixel math,
                 full-resolution upsampling
    styles/      the models: catalog from metadata, ONNX Runtime sessions, tiled painting,
                 thumbnails
    http/        the API: routes, request parsing and options, the one error mapping,
                 responses and their headers, the gunicorn worker that reads requests whole
    instance.py  what each serving process builds once and its request threads share

Nothing is imported here, so `import stylefn.contract` (export/ does) costs nothing else.
"""
