using System.Collections.Concurrent;
using ERCache.Diagnostics;
using ERCache.Internal;
using Microsoft.Extensions.Logging;

namespace ERCache.Regional;

/// <summary>
/// This host's end of the invalidation channel (DESIGN §2 rule 11): announces its removals, pushes and clears, and hands
/// every other host's to <c>apply</c>. Messages carry a host id, so a host never applies its own; each is applied once
/// (the channel delivers at most once). The subscription's state goes to <c>subscribed</c>: while it is lost the cache
/// must not trust local vectors written before the loss.
/// </summary>
internal sealed class RegionalInvalidator : IAsyncDisposable
{
    private readonly IRegionalInvalidation _channel;
    private readonly Func<TimeSpan> _timeout; // Regional:WriteTimeout as in force now (a reload may change it)
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Action<InvalidationMessage> _apply;
    private readonly Action<bool> _subscribed;
    /// <summary>How long after a failed subscription attempt the next one starts.</summary>
    internal static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(1);

    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _firstAttempt = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _subscribing;
    private IAsyncDisposable? _subscription;
    private int _state; // 0 never subscribed, 1 subscribed, 2 lost, 3 back but not yet proven (a probe is out)
    private long _probe; // the nonce of the probe this host waits to hear
    private Task _probing = Task.CompletedTask;
    private Task _watching = Task.CompletedTask;
    private int _watchLoop; // 1 while WatchLossAsync runs
    private int _disposed;
    private int _receiving = 1;
    private readonly ConcurrentDictionary<Task, byte> _announcing = new(); // background announcements in flight
    private const int SubscribeKind = 0, ProbeKind = 1, NotSentKind = 2;
    private readonly LogThrottle _problems; // retried every second while the store is down: a few lines a minute

    public RegionalInvalidator(
        IRegionalInvalidation channel, Func<TimeSpan> timeout, TimeProvider time, ERCacheMetrics metrics, ILogger logger, Action<InvalidationMessage> apply,
        Action<bool> subscribed)
    {
        _channel = channel;
        _timeout = timeout;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        _apply = apply;
        _subscribed = subscribed;
        _problems = new LogThrottle(time, kinds: 3);
        _subscribing = SubscribeAsync();
    }

    /// <summary>This host's id in its messages.</summary>
    public Guid Host { get; } = Guid.NewGuid();

    /// <summary>Completes when the first subscription attempt has ended, successful or not (never faults); a failed one
    /// is retried every <see cref="RetryInterval"/> until it succeeds.</summary>
    public Task Started => _firstAttempt.Task;

    /// <summary>Whether messages are being received now.</summary>
    public bool IsSubscribed => Volatile.Read(ref _state) == 1;

    /// <summary>How long ago a background announcement (a push, a clear) last failed; null if none has.</summary>
    public TimeSpan? SinceNotSent => _problems.SinceLast(NotSentKind);

    /// <summary>Announces an operation to the other hosts, bounded by <c>Regional:WriteTimeout</c>; throws when it could
    /// not be sent (the caller of a removal must know).</summary>
    public async Task PublishAsync(InvalidationKind kind, long userId, string? field, CancellationToken cancellationToken)
    {
        var message = new InvalidationMessage(kind, Host, userId, _time.GetUtcNow().ToUnixTimeMilliseconds(), field);
        try
        {
            await _channel.PublishAsync(message.Encode(), cancellationToken).WaitAsync(_timeout(), _time, cancellationToken).ConfigureAwait(false);
            _metrics.RecordInvalidation("sent");
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            _metrics.RecordInvalidation("failed");
            throw;
        }
    }

    /// <summary>Announces in the background (a push written by the flush loop, a clear); a failure is counted, logged
    /// (one line at most every 10 s, with the count left out since) and remembered for the health check: the other
    /// hosts keep their local copies until their TTL. Accepted until <see cref="DisposeAsync"/>, which waits for what
    /// is in flight (the pushes written by the regional tier's last flush included).</summary>
    public void Announce(InvalidationKind kind, long userId, string field)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        var announced = PublishAsync(kind, userId, field, CancellationToken.None).ContinueWith(
            static (t, s) =>
            {
                var (self, kind, user, field) = ((RegionalInvalidator, InvalidationKind, long, string))s!;
                if (t.Exception is { } ex)
                {
                    self.OnNotSent(kind, user, field, ex.InnerException ?? ex);
                }
            },
            (this, kind, userId, field),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        if (!announced.IsCompleted)
        {
            _announcing.TryAdd(announced, 0);
            _ = announced.ContinueWith(static (t, s) => ((RegionalInvalidator)s!)._announcing.TryRemove(t, out _), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private void LogStoreFailed(int kind, string operation, Exception error)
    {
        if (_problems.TryEnter(kind, out long suppressed))
        {
            Log.RegionalStoreFailed(_logger, operation, suppressed, error);
        }
    }

    private void OnNotSent(InvalidationKind kind, long userId, string field, Exception error)
    {
        if (_problems.TryEnter(NotSentKind, out long suppressed))
        {
            string what = kind == InvalidationKind.Clear ? $"clear of '{field}'" : $"{kind.ToString().ToLowerInvariant()} of user {userId} ('{field}')";
            Log.InvalidationNotSent(_logger, what, suppressed, error);
        }
    }

    /// <summary>Stops hearing other hosts (at disposal, before the tiers are released), unsubscribing within
    /// <c>Regional:WriteTimeout</c>; announcing still works.</summary>
    public async Task StopReceivingAsync()
    {
        if (Interlocked.Exchange(ref _receiving, 0) == 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await _subscribing.ConfigureAwait(false);
        await Volatile.Read(ref _probing).ConfigureAwait(false);
        await Volatile.Read(ref _watching).ConfigureAwait(false);
        if (_subscription is { } subscription)
        {
            // Bounded like every call to the store: a store that does not answer must not hold a disposal.
            var unsubscribing = subscription.DisposeAsync().AsTask();
            try
            {
                await unsubscribing.WaitAsync(_timeout(), _time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                unsubscribing.ObserveLateFailure();
            }
        }
    }

    /// <summary>Stops receiving, refuses new announcements and waits for those in flight (each bounded by
    /// <c>Regional:WriteTimeout</c>).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await StopReceivingAsync().ConfigureAwait(false);
        await Task.WhenAll(_announcing.Keys).ConfigureAwait(false); // the continuations never fault
        _stop.Dispose();
    }

    /// <summary>Subscribes, retrying every <see cref="RetryInterval"/> while the store cannot be reached (failures are
    /// logged at most every 10 s, with the count left out): a store down at start-up is heard from once it is
    /// up.</summary>
    private async Task SubscribeAsync()
    {
        await Task.Yield(); // not on the constructor's thread
        try
        {
            while (true)
            {
                try
                {
                    _subscription = await _channel.SubscribeAsync(OnMessage, OnSubscribed, _stop.Token).ConfigureAwait(false);
                    return;
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
                {
                    LogStoreFailed(SubscribeKind, "subscribe", ex);

                    OnSubscribed(false);
                }

                var retry = Task.Delay(RetryInterval, _time, _stop.Token); // timed from the failure, before anyone is told
                _firstAttempt.TrySetResult();
                await retry.ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // disposed while subscribing or waiting to retry
        }
        finally
        {
            _firstAttempt.TrySetResult();
        }
    }

    private void OnSubscribed(bool subscribed)
    {
        if (!subscribed)
        {
            // A first attempt that fails is not a loss: nothing was heard yet, and a store that is down at start-up
            // must not cost the host its own direct hits (the health check still says it is not subscribed). A loss
            // while a probe is out moves the doubt forward.
            int previous = Interlocked.Exchange(ref _state, 2);
            if (previous is 1 or 3)
            {
                _subscribed(false);
                if (Interlocked.CompareExchange(ref _watchLoop, 1, 0) == 0)
                {
                    Volatile.Write(ref _watching, WatchLossAsync());
                }
            }

            return;
        }

        // The first subscription is trusted at once. After a loss, the client says the connection is back before its
        // subscription is (StackExchange.Redis subscribes again after reconnecting): a message published meanwhile
        // would be missed. So the host sends itself a probe and trusts the channel only once it hears it.
        if (Interlocked.CompareExchange(ref _state, 1, 0) == 0)
        {
            _subscribed(true);
        }
        else if (Interlocked.CompareExchange(ref _state, 3, 2) == 2)
        {
            Volatile.Write(ref _probing, ProbeAsync()); // one at a time: only the change 2 -> 3 starts one
        }
    }

    /// <summary>Sends probes, one every <see cref="RetryInterval"/>, until one is heard or the subscription is lost
    /// again or the invalidator stops.</summary>
    private async Task ProbeAsync()
    {
        try
        {
            while (Volatile.Read(ref _state) == 3 && !_stop.IsCancellationRequested)
            {
                try
                {
                    await SendProbeAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogStoreFailed(ProbeKind, "probe", ex); // the next attempt follows
                }

                await Task.Delay(RetryInterval, _time, _stop.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // stopped
        }
    }

    /// <summary>
    /// While the client still reports the loss, probes once every <see cref="RetryInterval"/>: its "failed" and
    /// "restored" events come on other threads and can be handled out of order (a "restored" before its "failed" leaves
    /// the state lost with no "restored" to follow), so a host that hears its own probe trusts the channel again without
    /// waiting for an event. A probe that cannot be sent while lost is expected (the store may be down) and not logged.
    /// </summary>
    private async Task WatchLossAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                await Task.Delay(RetryInterval, _time, _stop.Token).ConfigureAwait(false);
                if (Volatile.Read(ref _state) != 2)
                {
                    break; // back (the probe loop proves it) or proven
                }

                try
                {
                    await SendProbeAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // still lost: the next attempt follows
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // stopped
        }
        finally
        {
            Volatile.Write(ref _watchLoop, 0);
        }

        if (Volatile.Read(ref _state) == 2 && !_stop.IsCancellationRequested && Interlocked.CompareExchange(ref _watchLoop, 1, 0) == 0)
        {
            Volatile.Write(ref _watching, WatchLossAsync()); // lost again between the loop's last look and its end
        }
    }

    /// <summary>Publishes a probe with a new nonce (the one <see cref="OnMessage"/> waits to hear), bounded like every
    /// call to the store.</summary>
    private Task SendProbeAsync()
    {
        long nonce = Interlocked.Increment(ref _probe);
        var message = new InvalidationMessage(InvalidationKind.Probe, Host, nonce, _time.GetUtcNow().ToUnixTimeMilliseconds(), null);
        return _channel.PublishAsync(message.Encode(), _stop.Token).WaitAsync(_timeout(), _time, _stop.Token);
    }

    private void OnMessage(byte[] bytes)
    {
        if (!InvalidationMessage.TryDecode(bytes, out var message))
        {
            _metrics.RecordInvalidation("undecodable");
            return;
        }

        if (message.Host == Host)
        {
            // This host applied its own operation before announcing it; its latest probe proves the channel is back.
            // Heard while the client still reports the loss (see WatchLossAsync), it proves the channel too.
            if (message.Kind == InvalidationKind.Probe && message.UserId == Volatile.Read(ref _probe)
                && (Interlocked.CompareExchange(ref _state, 1, 3) == 3 || Interlocked.CompareExchange(ref _state, 1, 2) == 2))
            {
                _subscribed(true);
            }

            return;
        }

        if (message.Kind == InvalidationKind.Probe)
        {
            return; // another host's probe: nothing to apply
        }

        _metrics.RecordInvalidation("received");
        _apply(message);
        _metrics.RecordInvalidation("applied");
        _metrics.RecordInvalidationLag(TimeSpan.FromMilliseconds(_time.GetUtcNow().ToUnixTimeMilliseconds() - message.StampUnixMs));
    }
}
