namespace ERCache.Regional;

/// <summary>
/// A channel every host of a region hears, beside its regional store (Redis or Garnet pub/sub): each host announces
/// its removals, pushes and clears on it, and every other host applies them to its local tiers. A store that can
/// offer one implements this interface too; <c>ERCache.Redis</c>'s store does.
/// </summary>
/// <remarks>
/// Delivery is at most once and may be lost while a host is disconnected, so a host also needs to know when it may
/// have missed messages: the <c>onSubscribed</c> callback of <see cref="SubscribeAsync"/> reports that. Messages are
/// opaque bytes to the channel.
/// </remarks>
public interface IRegionalInvalidation
{
    /// <summary>Sends <paramref name="message"/> to every subscribed host, the sender included.</summary>
    /// <param name="message">The encoded message.</param>
    /// <param name="cancellationToken">Cancelled at the call's timeout.</param>
    Task PublishAsync(byte[] message, CancellationToken cancellationToken);

    /// <summary>
    /// Starts delivering messages to <paramref name="onMessage"/> (on the channel's own thread: it must return quickly)
    /// and reports the subscription's state to <paramref name="onSubscribed"/>: <see langword="false"/> when it is lost
    /// (messages may be missed from then on), <see langword="true"/> when it is back.
    /// </summary>
    /// <param name="onMessage">Called with each message.</param>
    /// <param name="onSubscribed">Called when the subscription is lost or restored.</param>
    /// <param name="cancellationToken">Cancelled at the call's timeout.</param>
    /// <returns>Disposing it ends the subscription.</returns>
    Task<IAsyncDisposable> SubscribeAsync(Action<byte[]> onMessage, Action<bool> onSubscribed, CancellationToken cancellationToken);
}
