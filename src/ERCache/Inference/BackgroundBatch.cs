namespace ERCache.Inference;

/// <summary>A delegate call of another scheduler's users (see <see cref="IBackgroundBatchSource"/>), as the dispatcher's state.</summary>
internal sealed record BackgroundBatch(PendingInference[] Items, InferenceScheduler Target);
