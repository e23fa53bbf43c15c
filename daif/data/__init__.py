"""Focal-stack data: RGB-D sources, the HDF5 store, the Ray Data rendering pipeline, bin sampling.

Modules (Ray is imported only by `pipeline` at render time and by `dataset`):
    sources, nyuv2, folders, synthetic  scenes from NYUv2 .mat, RGB-D / DefocusNet folders, procedure
    store                                the self-describing store: open_store, Store, ShardWriter
    pipeline                             render_store(RenderConfig) behind `daif render`
    dataset                              read_split(path, split) -> ray.data.Dataset
    bins                                 BinSampler, make_batch
    streaming                            render sampled focus distances on the fly (no dense store)
"""
