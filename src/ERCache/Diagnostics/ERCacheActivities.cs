using System.Diagnostics;

namespace ERCache.Diagnostics;

/// <summary>
/// ERCache's <see cref="ActivitySource"/> (<see cref="ERCacheDiagnostics.ActivitySourceName"/>): a span per inference
/// delegate call and per regional store round trip, with bounded tags (model, batch size, outcome, operation; never a
/// user id). Nothing is allocated when no listener samples the source.
/// </summary>
internal static class ERCacheActivities
{
    public static readonly ActivitySource Source = new(ERCacheDiagnostics.ActivitySourceName);

    /// <summary>Starts the span of one delegate call, or null when nobody listens.</summary>
    public static Activity? StartInference(string model, int users, IEnumerable<ActivityLink>? callers = null)
    {
        // Parented to the first request it serves and linked to every one, so a slow request's trace shows its call.
        var links = callers as IReadOnlyCollection<ActivityLink>;
        var parent = links is { Count: > 0 } ? links.First().Context : default;
        var activity = Source.StartActivity(ERCacheDiagnostics.InferenceActivity, ActivityKind.Internal, parent, tags: null, links: links);
        activity?.SetTag(ERCacheDiagnostics.ModelTag, model).SetTag(ERCacheDiagnostics.BatchSizeTag, users);
        return activity;
    }

    /// <summary>Starts the span of one regional round trip (<c>read</c> or <c>write</c>), or null when nobody listens.</summary>
    public static Activity? StartRegional(string operation, int users)
    {
        var activity = Source.StartActivity(ERCacheDiagnostics.RegionalActivity, ActivityKind.Client);
        activity?.SetTag(ERCacheDiagnostics.OperationTag, operation).SetTag(ERCacheDiagnostics.BatchSizeTag, users);
        return activity;
    }

    /// <summary>The activity of the caller on this thread, when anyone listens to ERCache's spans (else nothing is read).</summary>
    public static Activity? CallerActivity() => Source.HasListeners() ? Activity.Current : null;

    /// <summary>One link per distinct caller context (none when no caller had an activity).</summary>
    public static List<ActivityLink>? Links(IEnumerable<Activity?> callers)
    {
        List<ActivityLink>? links = null;
        foreach (var activity in callers)
        {
            if (activity is not null && activity.Context is var caller && caller != default && (links is null || !links.Exists(l => l.Context == caller)))
            {
                (links ??= []).Add(new ActivityLink(caller));
            }
        }

        return links;
    }

    /// <summary>Ends a span with its outcome (<c>none</c> when it succeeded, else the failure's name, as an error).</summary>
    public static void Finish(Activity? activity, string outcome)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag(ERCacheDiagnostics.OutcomeTag, outcome);
        if (outcome != "none")
        {
            activity.SetStatus(ActivityStatusCode.Error, outcome);
        }

        activity.Dispose();
    }
}
