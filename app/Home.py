"""The app's entry point (what `streamlit run app/Home.py` and app/serve.py start): the page list.

Every page lives in pages/; Learn is the default, at the app's root address.
"""

import streamlit as st

PAGES = [
    # at the app's root; its own pathname (reserved, never shown) leaves /Learn to the alias below
    st.Page("pages/0_Learn.py", title="Learn", icon=":material/school:", default=True, url_path="learn-at-root"),
    st.Page("pages/1_Reconstruct.py", title="Reconstruct", icon=":material/image:", url_path="Reconstruct"),
    st.Page("pages/2_Tokens.py", title="Tokens", icon=":material/scatter_plot:", url_path="Tokens"),
    st.Page("pages/3_Attention.py", title="Attention", icon=":material/visibility:", url_path="Attention"),
    st.Page("pages/4_Curves.py", title="Curves", icon=":material/show_chart:", url_path="Curves"),
    st.Page("pages/5_Train.py", title="Train", icon=":material/model_training:", url_path="Train"),
    # /Learn, the address the other pages' pattern suggests, opens Learn too
    st.Page("pages/0_Learn.py", title="Learn", icon=":material/school:", url_path="Learn", visibility="hidden"),
]

st.navigation(PAGES).run()
