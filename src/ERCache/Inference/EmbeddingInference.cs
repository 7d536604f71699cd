namespace ERCache.Inference;

/// <summary>Delegate form of <see cref="IEmbeddingInference.InferAsync"/>.</summary>
/// <param name="batch">The users and the buffer to fill.</param>
/// <param name="cancellationToken">Cancelled at the model's <c>Inference:HardTimeout</c>; a caller giving up never cancels it.</param>
public delegate ValueTask EmbeddingInference(InferenceBatch batch, CancellationToken cancellationToken);
