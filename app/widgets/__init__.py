"""What the pages share on screen: the checkpoints and images they load (cached for every
session), the sidebar's pickers, charts and pictures, the per-layer table, the sections two pages
show. Computation lives in mto_core and app/logic; these modules load, cache and draw."""
