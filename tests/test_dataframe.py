"""pandas DataFrames in, column names out: ``expl.feature_names``; mismatched columns are refused as sklearn does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import neon


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris(as_frame=True)
    return data.data, data.target.to_numpy()


@pytest.mark.parametrize("kind", ["logreg", "pipeline", "kmeans"])
def test_dataframe_columns_become_feature_names(iris, kind: str) -> None:
    df, y = iris
    model = {"logreg": lambda: LogisticRegression(max_iter=1000).fit(df, y),
             "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(df, y),
             "kmeans": lambda: KMeans(3, n_init=5, random_state=0).fit(df)}[kind]()
    assert neon.neuralize(model).feature_names == list(df.columns)
    expl = neon.Explainer(model).fit(df).explain(df)
    assert expl.feature_names == list(df.columns)
    # relevance comes back in the input's form: a DataFrame on the same index and columns
    assert isinstance(expl.relevance, pd.DataFrame) and expl.relevance.shape == df.shape
    assert list(expl.relevance.columns) == list(df.columns) and expl.relevance.index.equals(df.index)
    assert isinstance(expl.output, pd.Series) and expl.output.index.equals(df.index)
    # The same numbers as for the plain array.
    plain = neon.Explainer(model).fit(df.to_numpy()).explain(df.to_numpy())
    np.testing.assert_allclose(expl.relevance, plain.relevance, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(expl.target, model.predict(df))  # iris classes are 0, 1, 2: index = label


def test_regressor_with_reference_on_dataframe() -> None:
    data = load_diabetes(as_frame=True)
    df, y = data.data, data.target
    model = Ridge().fit(df, y)
    expl = neon.Explainer(model, reference="mean").fit(df).explain(df.iloc[:20])
    assert expl.feature_names == list(df.columns)
    np.testing.assert_allclose(expl.relevance, model.coef_ * (df.iloc[:20].to_numpy() - df.to_numpy().mean(0)),
                               rtol=1e-9, atol=1e-12)


def test_mismatched_columns_are_refused_like_sklearn(iris) -> None:
    df, y = iris
    model = LogisticRegression(max_iter=1000).fit(df, y)
    renamed = df.rename(columns={df.columns[0]: "sepal width (mm)"})
    with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
        model.predict(renamed)  # sklearn's own wording, checked here so the comparison stays honest
    with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
        neon.explain(model, renamed)
    with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
        neon.Explainer(model).fit(df).explain(df[df.columns[::-1]])
    with pytest.raises(ValueError, match="X has 3 features, but LogisticRegression is expecting 4 features as input."):
        neon.explain(model, df.iloc[:, :3])
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(df, y)
    with pytest.raises(ValueError, match="The feature names should match"):
        neon.explain(pipe, renamed)


def test_model_fitted_on_array_accepts_dataframe(iris) -> None:
    df, y = iris
    model = LogisticRegression(max_iter=1000).fit(df.to_numpy(), y)
    expl = neon.explain(model, df)
    assert expl.feature_names == list(df.columns)
