namespace ERCache.OnnxRuntime;

/// <summary>
/// Writes one user's features into <paramref name="features"/>, a slice of the batch's input tensor: what a feature
/// store or the request would give for the user. Called once per user of a batch, on the thread that runs the batch;
/// it must not keep the span.
/// </summary>
/// <param name="userId">The user.</param>
/// <param name="features">The user's row of the input tensor: the model's feature count, zeroed.</param>
public delegate void OnnxFeatureWriter(long userId, Span<float> features);
