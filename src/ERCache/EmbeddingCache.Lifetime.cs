using ERCache.Internal;

namespace ERCache;

// Disposal: requests in flight hold a lease, and whoever returns the last one releases the model versions, the
// regional tier and the meter.
public sealed partial class EmbeddingCache
{
    /// <summary>
    /// Stops serving: later calls throw <see cref="ObjectDisposedException"/>, configuration reloads are no longer
    /// followed. Requests already waiting for inference complete as usual (by their deadline); once the last one has,
    /// the snapshots are written (with <c>Snapshots:Directory</c>, bounded by <c>Snapshots:WriteTimeout</c>), then the
    /// schedulers (timers, spare buffers), the tiers (MemoryCache tiers are disposed), the regional tier (its queued
    /// writes are flushed, bounded by <c>Regional:WriteTimeout</c>) and the meter are released. With no request in
    /// flight this happens here; otherwise it happens when the last request completes, and this method does not wait.
    /// </summary>
    public void Dispose()
    {
        // With no request in flight the release starts here: wait (bounded) for the snapshots and the regional tier's
        // last writes.
        var bound = (_snapshots is null ? TimeSpan.Zero : _snapshotWriteTimeout + TimeSpan.FromSeconds(1)) +
            (_regional is null ? TimeSpan.Zero : 3 * _regional.WriteTimeout); // the last flush, then its announcements
        if (BeginDispose() is true && bound > TimeSpan.Zero && !_released.Task.Wait(bound) && _regional is not null)
        {
            Log.RegionalNotFlushed(_logger);
        }
    }

    /// <summary>Like <see cref="Dispose"/>, and completes once every request in flight has completed and everything is
    /// released (the regional tier's last writes included).</summary>
    public async ValueTask DisposeAsync()
    {
        BeginDispose();
        await _released.Task.ConfigureAwait(false);
    }

    /// <summary>Marks the cache disposed and returns its own lease. Null when it was disposed already; true when no request
    /// was in flight and the release has started; false when the last request in flight will start it.</summary>
    private bool? BeginDispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return null;
        }

        _reloadSubscription?.Dispose();
        _configurationSubscription?.Dispose();
        return _requests.Close(); // true: it started the release (ReleaseAsync)
    }

    private void CheckDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            ThrowHelper.ThrowDisposed();
        }
    }

    private void ExitRequest() => _requests.Release(); // the last one after disposal starts ReleaseAsync

    private async Task ReleaseAsync()
    {
        try
        {
            if (_snapshots is not null)
            {
                await _snapshots.StopAsync().ConfigureAwait(false); // a graceful stop: the tiers are written before they are released
                _snapshots.Dispose();
            }

            // Unsubscribing and the last flush run together, each within Regional:WriteTimeout: the flush writes queued
            // values, not the tiers, and its announcements go out on the channel whether or not this host still listens.
            var flushing = _regional?.DisposeAsync().AsTask() ?? Task.CompletedTask;
            if (_invalidator is not null)
            {
                await _invalidator.StopReceivingAsync().ConfigureAwait(false); // no other host's message reaches released states
            }

            _registry.Dispose();
            await flushing.ConfigureAwait(false); // its last flush announces the pushes it writes

            if (_invalidator is not null)
            {
                await _invalidator.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            Log.ReleaseFailed(_logger, ex);
        }
        finally
        {
            _metrics.Dispose();
            _released.TrySetResult();
        }
    }
}
