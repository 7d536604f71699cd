using ERCache.Internal;
using ERCache.Models;
using ERCache.Regional;
using Microsoft.Extensions.Logging;

namespace ERCache;

// Invalidation across hosts (DESIGN §2 rule 11): this host's removals, pushes and clears are announced on the store's
// channel, and other hosts' are applied here to the local tiers only (the store already holds the result).
public sealed partial class EmbeddingCache
{
    /// <summary>Whether other hosts' removals, pushes and clears reach this host now: null without an invalidation
    /// channel (no regional store, a store without one, or <c>Regional:Invalidation</c> off).</summary>
    internal bool? IsInvalidationSubscribed => _invalidator?.IsSubscribed;

    /// <summary>How long ago a push or clear of this host last could not be announced; null if none failed (or there
    /// is no invalidation channel).</summary>
    internal TimeSpan? SinceAnnouncementNotSent => _invalidator?.SinceNotSent;

    private RegionalInvalidator StartInvalidation(IRegionalInvalidation channel)
    {
        var regional = _regional!;
        regional.PushWritten = (user, field) => _invalidator?.Announce(InvalidationKind.Push, user, field);
        return new RegionalInvalidator(channel, () => regional.WriteTimeout, _time, _metrics, _logger, ApplyInvalidation, OnInvalidationSubscribed);
    }

    /// <summary>Announces a removal this host completed; throws when it could not be sent.</summary>
    private Task AnnounceRemovalAsync(long userId, string[]? fields, CancellationToken cancellationToken)
    {
        if (_invalidator is not { } invalidator)
        {
            return Task.CompletedTask;
        }

        return fields is null
            ? invalidator.PublishAsync(InvalidationKind.RemoveUser, userId, null, cancellationToken)
            : Task.WhenAll(fields.Select(f => invalidator.PublishAsync(InvalidationKind.RemoveField, userId, f, cancellationToken)));
    }

    /// <summary>Another host's operation, applied to this host's local tiers (on the channel's thread).</summary>
    private void ApplyInvalidation(InvalidationMessage message)
    {
        foreach (var state in _registry.AllVersions)
        {
            var runtime = state.Current;
            if (message.Kind != InvalidationKind.RemoveUser && !string.Equals(runtime.RegionalField, message.Field, StringComparison.Ordinal))
            {
                continue;
            }

            if (message.Kind == InvalidationKind.Clear)
            {
                runtime.Clear(message.StampUnixMs);
            }
            else
            {
                // A removal, or a push whose value is now in the store: drop the local copy (the next request reads the store).
                runtime.DropLocal(message.UserId);
            }
        }
    }

    /// <summary>While the subscription is lost, local vectors written before the loss are checked regionally; when it
    /// is back, what was written before cannot be vouched for and is dropped.</summary>
    private void OnInvalidationSubscribed(bool subscribed)
    {
        var regional = _regional!;
        if (!subscribed)
        {
            regional.SetDistrustBefore(new TtlClock(_time).Now);
            Log.InvalidationLost(_logger);
            return;
        }

        if (regional.DistrustBefore != long.MinValue)
        {
            int dropped = _registry.AllVersions.Sum(s => s.Current.DropLocal()); // before trusting the tiers again
            regional.SetDistrustBefore(long.MinValue);
            Log.InvalidationRestored(_logger, dropped);
        }
    }
}
