namespace ERCache.Internal;

/// <summary>
/// Counts the users of something that must outlive them: one lease for the owner, one per piece of work in progress.
/// Whoever returns the last lease releases the resources, so work that began before <see cref="Close"/> finishes on live
/// ones, and nothing new begins after it.
/// </summary>
/// <remarks>The cache and each model version use it. The ONNX adapter keeps its own count: it lives in another package and
/// this type is not public (a public type only to share six lines would widen the API).</remarks>
internal sealed class LeaseCount
{
    private int _count = 1; // the owner's lease
    private int _closed;

    /// <summary>Whether <see cref="Close"/> was called.</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>Takes a lease for work about to begin; false once closed (nothing new may begin).</summary>
    public bool TryAcquire()
    {
        int count = Volatile.Read(ref _count);
        while (count > 0 && !IsClosed)
        {
            int seen = Interlocked.CompareExchange(ref _count, count + 1, count);
            if (seen == count)
            {
                return true;
            }

            count = seen;
        }

        return false;
    }

    /// <summary>Returns a lease; true when it was the last one, and the caller must release the resources.</summary>
    public bool Release() => Interlocked.Decrement(ref _count) == 0;

    /// <summary>Stops new leases and returns the owner's; true when nothing was in progress, and the caller must release
    /// the resources. False also when already closed.</summary>
    public bool Close() => Interlocked.Exchange(ref _closed, 1) == 0 && Release();
}
