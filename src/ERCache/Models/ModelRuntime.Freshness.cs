using System.Numerics.Tensors;
using ERCache.Inference;

namespace ERCache.Models;

// Freshness on spare capacity: a direct hit may queue a refresh ahead or a drift sample, never waiting for it.
internal sealed partial class ModelRuntime
{
    /// <summary>
    /// Background work a direct hit may ask for, on spare capacity only: a refresh ahead when the entry is older than
    /// <c>Freshness:RefreshAhead</c> of the TTL, else, for a sampled share of hits, a drift sample. Queues at most one
    /// call and never waits for it; the response has already been copied.
    /// </summary>
    private void OnDirectHit(long userId, long now, long writtenAt, Span<float> served)
    {
        long age = now - writtenAt;
        if (age >= RefreshAheadAge)
        {
            if (_scheduler.HasSpareCapacity && _scheduler.TrySubmitBackground(userId, _time.GetTimestamp() + InferenceTimeout, BackgroundWork.Refresh, null))
            {
                _metrics.RecordRefreshAhead(Policy.Name);
            }

            return;
        }

        if (Policy.DriftSampleRate > 0 && State.Sampling.NextDouble() < Policy.DriftSampleRate && _scheduler.HasSpareCapacity &&
            _scheduler.TrySubmitBackground(userId, _time.GetTimestamp() + InferenceTimeout, BackgroundWork.DriftSample, new DriftSample(served.ToArray(), Age(writtenAt, now))))
        {
            _metrics.RecordDriftSample(Policy.Name);
        }
    }

    /// <summary>How far a served vector is from the fresh one: 1 − cosine similarity (0 when identical, 2 when
    /// opposite). A zero vector on either side counts as fully drifted (1).</summary>
    internal static double Drift(ReadOnlySpan<float> served, ReadOnlySpan<float> fresh)
    {
        float similarity = TensorPrimitives.CosineSimilarity(served, fresh);
        return float.IsFinite(similarity) ? Math.Clamp(1.0 - similarity, 0.0, 2.0) : 1.0;
    }
}
