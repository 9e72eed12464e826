"""Attention: where a query patch looks, per layer and head, baseline beside MTO; the full
attention matrix with the recalibrated block; how much visible tokens draw on masked ones."""

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st


from mto_core import make_mask, token_trace
from mto_core.analysis.measures import query_attention
from logic.labels import mask_heads, mask_site
from logic.pixels import default_query
from logic.scales import measure_range
from widgets.charts import chart, heat, integer_layers, patch_picker, styled
from widgets.layers import layer_table
from widgets.models import inputs_for, load, seen_names
from widgets.page import page
from widgets.sidebar import choose_pair, mask_controls

page("Attention", "👁️")
pair = choose_pair("attn")
if not pair:
    mask_controls("attn")
    st.stop()
cfg = pair[0][1].config.model
ratio, seed, mask_kind = mask_controls("attn", ("random", "block"), patches=cfg.num_patches)
shown_in = inputs_for(cfg)
images, names = shown_in.images, seen_names(shown_in, pair)
g, n, p = cfg.grid, cfg.num_patches, cfg.patch_size
where = mask_site(cfg)
st.caption(f"What the model sees: {shown_in.seen}. Tokens: [CLS] and {n} patches ({1 + n} in all).")

c1, c2, c3 = st.columns(3)
if shown_in.photos:
    index = c1.selectbox("Photo", list(range(len(images))), format_func=lambda i: names[i], key="attn-photo")
else:
    index = c1.number_input(f"Test-split index (0 to {len(images) - 1:,})", 0, len(images) - 1, 3, key="attn-index")
layers = min(ckpt.config.model.mask_layers for _, ckpt in pair)  # a pair may differ in depth and heads
layer = c2.selectbox(f"Layer of the {where}", list(range(1, layers + 1)), key="attn-layer")
heads = min(mask_heads(ckpt.config.model) for _, ckpt in pair)
head = c3.selectbox("Head", ["mean over heads", *range(heads)], key="attn-head",
                    format_func=lambda h: h if isinstance(h, str) else f"head {h}")
head_index = None if isinstance(head, str) else int(head)
head_name = "mean over heads" if head_index is None else f"head {head_index}"
image = images[int(index):int(index) + 1]
mask = make_mask(1, g, ratio, seed, kind=mask_kind)[0]

query_key = f"attn-query-{g}"  # a query of another grid means nothing here
query = st.session_state.get(query_key, default_query(image, mask, p, centre=shown_in.photos))
if not 0 <= query < n:
    query = default_query(image, mask, p, centre=shown_in.photos)
was_masked = st.session_state.get("attn-query-masked")
now_masked = bool(mask[query])
if was_masked is not None and was_masked != now_masked:
    st.warning(f"The mask changed: query patch {query} is now **{'masked' if now_masked else 'visible'}** "
               f"(it was {'masked' if was_masked else 'visible'}). Click another patch to choose again.")
st.session_state["attn-query-masked"] = now_masked

left, right = st.columns([1, 2])
with left:
    st.caption((f"**{names[int(index)]}.** " if shown_in.photos else "")
               + "Click a patch to make it the query (magenta: masked, cyan frame: the query).")
    points = patch_picker(image, mask, p, "attn-click", 300, query)
    if points and int(points[0]) != query:
        st.session_state[query_key] = int(points[0])
        st.session_state["attn-query-masked"] = bool(mask[int(points[0])])
        st.rerun()
    st.markdown(f"Query: patch **{query}** ({'masked' if now_masked else 'visible'}).")


# The figures below depend only on the checkpoints, the image, the mask, the layer, the head and the
# query, never on the session: each is built once and shared (a classroom opens this page at once;
# docs/performance.md)
@st.cache_resource(show_spinner=False, max_entries=64)
def attention_figures(pair_key: tuple, index: int, ratio: float, seed: int, layer: int, head_index: int | None,
                      query: int, mask_kind: str = "random") -> tuple[list[go.Figure], list[tuple[go.Figure, float]]]:
    """Where ``query`` looks (a map per checkpoint) and the full attention matrices, each with its
    visible-to-masked attention per visible query."""
    image = images[index:index + 1]
    mask = make_mask(1, g, ratio, seed, kind=mask_kind)[0]
    # only the chosen layer's maps: a ViT-B has 12 layers of 12 heads x 197 x 197
    traces = [(label, token_trace(load(path), image, mask, hidden_layers=[], attention_layers=[layer]))
              for label, path in pair_key]
    rows = [query_attention(trace, query, layer, head_index) for _, trace in traces]
    top = float(max(r.max() for r in rows)) or 1.0
    qy, qx = divmod(query, g)
    maps = []
    for (label, _), row in zip(traces, rows):
        fig = heat(row, label, zmax=top, height=330, colorbar="attention")
        fig.add_shape(type="rect", x0=qx - 0.5, x1=qx + 0.5, y0=qy - 0.5, y1=qy + 0.5,
                      line=dict(color="#00e5ff", width=3))
        my, mx = np.divmod(np.flatnonzero(mask.numpy()), g)
        fig.add_trace(go.Scatter(x=mx, y=my, mode="markers", hoverinfo="skip", showlegend=False,
                                 marker=dict(size=5, color="#ff00c8")))
        maps.append(styled(fig))
    fulls = []
    for label, trace in traces:
        attn = trace.attn[layer][0].float()
        fulls.append(((attn.mean(0) if head_index is None else attn[head_index]).numpy(), trace.token_mask[0].numpy()))
    shared = float(max(np.quantile(full, 0.99) for full, _ in fulls)) or None
    matrices = []
    for (label, _), (full, token_mask) in zip(traces, fulls):
        order = np.concatenate([np.flatnonzero(~token_mask), np.flatnonzero(token_mask)])
        visible = int((~token_mask).sum())
        z = full[np.ix_(order, order)]
        fig = heat(z, label, zmax=shared, height=380, colorbar="attention (top 1% clipped)")
        fig.add_shape(type="rect", x0=visible - 0.5, x1=z.shape[0] - 0.5, y0=-0.5, y1=visible - 0.5,
                      line=dict(color="#e0008c", width=3))
        fig.update_xaxes(visible=True, showticklabels=False, title="key")
        fig.update_yaxes(visible=True, showticklabels=False, title="query")
        fig.update_layout(margin=dict(l=30, r=0, t=30, b=30))
        matrices.append((styled(fig), float(z[:visible, visible:].sum(1).mean())))
    return maps, matrices


pair_key = tuple((label, str(ckpt.path)) for label, ckpt in pair)
maps, matrices = attention_figures(pair_key, int(index), ratio, seed, layer, head_index, query, mask_kind)
with right:
    st.caption(f"Where patch {query} looks in layer {layer} ({head_name}), on one shared scale. Dots: masked "
               "patches; cyan frame: the query itself.")
    for side, (col, fig) in enumerate(zip(st.columns(len(maps)), maps)):
        with col:
            chart(fig, key=f"attn-map-{side}", ready=True)

st.subheader(f"The full attention matrix, layer {layer} ({head_name})")
st.caption(f"Rows: queries, columns: keys ({1 + n} each), ordered [CLS], visible patches, masked patches"
           + (", on one shared scale" if len(pair) == 2 else "")
           + ". The framed block is visible queries × masked keys: with hard recalibration (MTO) it is exactly zero.")
for side, (col, (fig, drawn)) in enumerate(zip(st.columns(2), matrices)):
    with col:
        chart(fig, key=f"attn-full-{side}", ready=True)
        st.caption(f"visible → masked attention per visible query: {drawn:.3f}")

st.subheader("Heterogeneity between masked and visible tokens, per layer")
st.caption("Visible-to-masked attention mass a_VM (about the mask ratio r for uninformed attention; 0 with "
           "hard recalibration), heterogeneity HI = 1 − a_VM / r, and row entropy of masked and visible "
           "queries (divided by log of the number of keys). "
           + ("Four of the photos." if shown_in.photos else "32 held-out test images."))


@st.cache_resource(show_spinner=False, max_entries=32)
def layer_figures(pair_key: tuple, ratio: float, where: str) -> list[go.Figure]:
    """a_VM and HI per layer, and the row entropies: three styled figures shared by every session."""
    table = layer_table([(label, load(path)) for label, path in pair_key], ratio).dropna(
        subset=["attn_visible_to_masked"])
    palette = ["#1f77b4", "#d62728"]
    figures = []
    for measure, title in (("attn_visible_to_masked", "visible → masked attention a_VM"),
                           ("heterogeneity", "heterogeneity HI")):
        fig = px.line(table, x="layer", y=measure, color="checkpoint", markers=True, height=300,
                      color_discrete_sequence=palette)
        fig.update_layout(yaxis_title=title, legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0,
                                                         title_text=""),
                          margin=dict(l=60, r=10, t=70, b=50))
        fig.update_yaxes(range=measure_range(measure, table[measure], ratio))  # fixed: noise stays small
        if measure == "attn_visible_to_masked":
            fig.add_hline(y=ratio, line_dash="dot", line_color="#888", annotation_text=f"r = {ratio:.2f}: uninformed",
                          annotation_position="bottom right")
        figures.append(styled(integer_layers(fig, f"layer of the {where}")))
    long = table.melt(id_vars=["layer", "checkpoint"], value_vars=["entropy_masked", "entropy_visible"],
                      var_name="queries", value_name="entropy")
    long["queries"] = long["queries"].map({"entropy_masked": "masked queries", "entropy_visible": "visible queries"})
    fig = px.line(long, x="layer", y="entropy", color="checkpoint", line_dash="queries", markers=True, height=320,
                  color_discrete_sequence=palette)
    fig.update_layout(yaxis_title="row entropy / log(keys)", margin=dict(l=60, r=10, t=70, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, title_text=""))
    fig.update_yaxes(range=measure_range("entropy", long["entropy"], ratio))
    figures.append(styled(integer_layers(fig, f"layer of the {where}")))
    return figures


vm, hi, entropy = layer_figures(pair_key, ratio, where)
for col, fig, measure in zip(st.columns(2), (vm, hi), ("attn_visible_to_masked", "heterogeneity")):
    with col:
        chart(fig, key=f"attn-{measure}", ready=True)
chart(entropy, key="attn-entropy", ready=True)

